// Starts a worker thread on a module of this package, whether the package
// runs compiled (dist/, where the module is a .js file) or from its
// TypeScript sources (the tests, where only the .ts file exists and Node 20
// cannot run it unaided: the worker then first registers module hooks that
// transpile .ts files with the TypeScript compiler, a development dependency).
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker, type WorkerOptions } from 'node:worker_threads';
import { packageRoot } from './paths.js';

/** Module hooks for the TypeScript sources: "./x.js" imports resolve to "./x.ts", and .ts files are transpiled. */
function typescriptHooksSource(): string {
  const requireFrom = JSON.stringify(path.join(packageRoot, 'package.json'));
  return `
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
const ts = createRequire(${requireFrom})('typescript');
export async function resolve(specifier, context, nextResolve) {
  try {
    return await nextResolve(specifier, context);
  } catch (err) {
    if (!specifier.endsWith('.js') || !context.parentURL?.endsWith('.ts')) throw err;
    return nextResolve(specifier.slice(0, -3) + '.ts', context);
  }
}
export async function load(url, context, nextLoad) {
  if (!url.endsWith('.ts')) return nextLoad(url, context);
  const fileName = fileURLToPath(url);
  const { outputText } = ts.transpileModule(await readFile(fileName, 'utf8'), {
    fileName,
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, sourceMap: false },
  });
  return { format: 'module', source: outputText, shortCircuit: true };
}`;
}

const dataUrl = (source: string): URL => new URL(`data:text/javascript,${encodeURIComponent(source)}`);

/**
 * A worker running `moduleUrl` (the compiled name, "….js", relative to the
 * caller's import.meta.url). Throws when neither the module nor its
 * TypeScript source exists.
 */
export function startWorker(moduleUrl: URL, options: WorkerOptions): Worker {
  const compiled = fileURLToPath(moduleUrl);
  if (existsSync(compiled)) return new Worker(moduleUrl, options);
  const source = compiled.replace(/\.js$/, '.ts');
  if (!existsSync(source)) throw new Error(`worker module not found: ${compiled}`);
  const bootstrap = `
import { register } from 'node:module';
register(${JSON.stringify(dataUrl(typescriptHooksSource()).href)});
await import(${JSON.stringify(pathToFileURL(source).href)});`;
  return new Worker(dataUrl(bootstrap), options);
}
