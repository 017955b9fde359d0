// portcullis addresses assign <cidr> --user <name> | --group <key> [--note "..."] | list | remove <cidr>
import {
  assignAddresses,
  IpAssignmentError,
  listAddressAssignments,
  removeAddressAssignment,
  type AssignTo,
} from '../core/ip-assignments.js';
import type { Command } from './context.js';

const USAGE = `Usage: portcullis addresses <command>

  assign <cidr> --user <name> [--note "..."]    requests from these addresses are that person's
  assign <cidr> --group <key> [--note "..."]    requests from these addresses get that group's policy
  list                                          every assignment
  remove <cidr>                                 forget an assignment

Signed-in proxy users are identified by their login first; the most specific range wins.
`;

function parseAssign(args: string[]): { cidr: string; to: AssignTo; note: string } | undefined {
  const [cidr, ...options] = args;
  if (!cidr || options.length % 2 !== 0) return undefined;
  let to: AssignTo | undefined;
  let note = '';
  for (let i = 0; i < options.length; i += 2) {
    const [flag, value] = [options[i], options[i + 1]];
    if (flag === '--user' && !to) to = { username: value };
    else if (flag === '--group' && !to) to = { groupKey: value };
    else if (flag === '--note') note = value;
    else return undefined;
  }
  return to ? { cidr, to, note } : undefined;
}

export const addressesCommand: Command = async (args, ctx) => {
  const [sub, ...rest] = args;
  try {
    if (sub === 'assign') {
      const parsed = parseAssign(rest);
      if (parsed) {
        await assignAddresses(ctx.pool, ctx.schoolId, parsed.cidr, parsed.to, parsed.note);
        const owner = 'username' in parsed.to ? `user ${parsed.to.username}` : `group ${parsed.to.groupKey}`;
        ctx.stdout.write(`${parsed.cidr} now identifies ${owner}\n`);
        return 0;
      }
    } else if (sub === 'list' && rest.length === 0) {
      for (const a of await listAddressAssignments(ctx.pool, ctx.schoolId)) {
        const owner = a.username !== null ? `user ${a.username}` : `group ${a.groupKey}`;
        ctx.stdout.write(`${a.cidr.padEnd(20)} ${owner}${a.note ? `  (${a.note})` : ''}\n`);
      }
      return 0;
    } else if (sub === 'remove' && rest.length === 1) {
      await removeAddressAssignment(ctx.pool, ctx.schoolId, rest[0]);
      ctx.stdout.write(`removed ${rest[0]}\n`);
      return 0;
    }
    ctx.stderr.write(USAGE);
    return 2;
  } catch (err) {
    if (err instanceof IpAssignmentError) {
      ctx.stderr.write(`portcullis addresses: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
};
