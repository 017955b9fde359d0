// Locations inside the installed package, the same whether running from
// TypeScript sources (tests) or from the compiled dist/ folder.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function findPackageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('portcullis: cannot find the package root');
    dir = parent;
  }
  return dir;
}

export const packageRoot = findPackageRoot();
export const migrationsDir = path.join(packageRoot, 'migrations');
export const defaultListsFile = path.join(packageRoot, 'blocklists', 'data', 'ut1-default.tar.gz');
