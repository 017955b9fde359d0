// portcullis users add <name> --group <g> [--role r]... [--display-name "..."] | list | disable <name>
// The password is read from stdin (one line), never from the command line,
// where it would end up in the shell history and the process list.
import type tty from 'node:tty';
import { addUser, checkPassword, disableUser, listUsers, UserError } from '../core/users.js';
import type { CliContext, Command } from './context.js';

const USAGE = `Usage: portcullis users <command>

  add <name> --group <group> [--role <role>]... [--display-name "<name>"]
                     add a user; the password is read from stdin (prompted for on a terminal)
  list               every user, with group, roles and status
  disable <name>     stop a user logging in (their history is kept)
`;

class UsageError extends Error {}

interface AddArguments {
  username: string;
  groupKey: string;
  roles: string[];
  displayName?: string;
}

function parseAdd(args: string[]): AddArguments {
  let username: string | undefined;
  let groupKey: string | undefined;
  let displayName: string | undefined;
  const roles: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const [flag, inlineValue] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    if (!flag.startsWith('--')) {
      if (username !== undefined) throw new UsageError(`unexpected argument "${arg}"`);
      username = arg;
      continue;
    }
    const value = inlineValue ?? args[++i];
    if (value === undefined) throw new UsageError(`${flag} needs a value`);
    if (flag === '--group') groupKey = value;
    else if (flag === '--role') roles.push(value);
    else if (flag === '--display-name') displayName = value;
    else throw new UsageError(`unknown option ${flag}`);
  }
  if (username === undefined) throw new UsageError('the user name is missing');
  if (groupKey === undefined) throw new UsageError('--group is required');
  return { username, groupKey, roles, displayName };
}

/** The first line of a piped stdin (without its line ending). */
function readLine(stream: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    const finish = (line: string) => {
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
      stream.pause();
      resolve(line.replace(/\r$/, ''));
    };
    const onData = (chunk: Buffer | string) => {
      buffered += chunk.toString();
      const newline = buffered.indexOf('\n');
      if (newline >= 0) finish(buffered.slice(0, newline));
    };
    const onEnd = () => finish(buffered);
    const onError = (err: Error) => {
      stream.off('data', onData);
      stream.off('end', onEnd);
      reject(err);
    };
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('error', onError);
    stream.resume();
  });
}

/** Reads a line from a terminal without echoing it. */
function readHidden(input: tty.ReadStream, output: NodeJS.WritableStream, prompt: string): Promise<string> {
  output.write(prompt);
  input.setRawMode(true);
  input.setEncoding('utf8');
  return new Promise((resolve, reject) => {
    let typed = '';
    const done = (err?: Error) => {
      input.off('data', onData);
      input.setRawMode(false);
      input.pause();
      output.write('\n');
      if (err) reject(err);
      else resolve(typed);
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') return done();
        if (ch === '\u0003' || ch === '\u0004') return done(new UserError('cancelled'));
        if (ch === '\u007f' || ch === '\b') typed = typed.slice(0, -1);
        else typed += ch;
      }
    };
    input.on('data', onData);
    input.resume();
  });
}

async function readPassword(ctx: CliContext): Promise<string> {
  const input = ctx.stdin as tty.ReadStream;
  if (input.isTTY) {
    const first = await readHidden(input, ctx.stderr, 'Password: ');
    const again = await readHidden(input, ctx.stderr, 'Password again: ');
    if (first !== again) throw new UserError('the passwords do not match');
    return first;
  }
  return readLine(ctx.stdin);
}

async function runAdd(args: string[], ctx: CliContext): Promise<number> {
  const parsed = parseAdd(args);
  const password = await readPassword(ctx);
  if (password === '') throw new UserError('no password given on stdin');
  checkPassword(password);
  const user = await addUser(ctx.pool, { schoolId: ctx.schoolId, ...parsed, password });
  ctx.stdout.write(`added user "${user.username}" (#${user.id}) to group ${parsed.groupKey}\n`);
  return 0;
}

async function runList(ctx: CliContext): Promise<number> {
  const users = await listUsers(ctx.pool, ctx.schoolId);
  const rows = [
    ['USERNAME', 'GROUP', 'ROLES', 'STATUS', 'DISPLAY NAME'],
    ...users.map((u) => [
      u.username,
      u.groupKey,
      u.roles.join(',') || '-',
      u.disabled ? 'disabled' : u.hasPassword ? 'active' : 'no password',
      u.displayName,
    ]),
  ];
  const widths = rows[0].map((_, col) => Math.max(...rows.map((r) => r[col].length)));
  for (const row of rows) ctx.stdout.write(`${row.map((cell, col) => cell.padEnd(widths[col])).join('  ').trimEnd()}\n`);
  return 0;
}

async function runDisable(username: string, ctx: CliContext): Promise<number> {
  await disableUser(ctx.pool, ctx.schoolId, username);
  ctx.stdout.write(`disabled user "${username.toLowerCase()}"\n`);
  return 0;
}

export const usersCommand: Command = async (args, ctx) => {
  const [sub, ...rest] = args;
  try {
    if (sub === 'add') return await runAdd(rest, ctx);
    if (sub === 'list' && rest.length === 0) return await runList(ctx);
    if (sub === 'disable' && rest.length === 1) return await runDisable(rest[0], ctx);
    ctx.stderr.write(USAGE);
    return 2;
  } catch (err) {
    if (err instanceof UsageError) {
      ctx.stderr.write(`portcullis users: ${err.message}\n\n${USAGE}`);
      return 2;
    }
    if (err instanceof UserError) {
      ctx.stderr.write(`portcullis users: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
};
