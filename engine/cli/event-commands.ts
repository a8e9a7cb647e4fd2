/** The event history the helper keeps per snapshot: list it, dismiss it. */
import { eventMeaning } from '../helper/event-log.js';
import type { CommandSpec } from './command.js';
import { needSnapshotId, optString, printJson, printTable } from './command.js';
import { dateTimeText } from './manager-commands.js';

const ID: [string, string] = ['-i, --id ID', 'snapshot id (snapshots lists the held ones; events the ones with events)'];

export const eventCommands: CommandSpec[] = [
  {
    name: 'events',
    summary: 'list the events the helper kept per snapshot (also of destroyed snapshots, until dismissed)',
    usage: '[--snapshot ID]',
    help: [['-s, --snapshot ID', 'only this snapshot\'s events']],
    example: ['blksnap-manager events', 'blksnap-manager events --json'],
    prints:
      'a table, the most recently active snapshot first, its events oldest first: SNAPSHOT, NAME (- without one), ENDED (local date and time the snapshot ended, or "held"), TIME, EVENT (corrupted, no_space or low_free_space) and MEANING; then one line per snapshot whose oldest events were left out to keep the bound',
    options: { snapshot: { type: 'string', short: 's' } },
    needsHelper: true,
    async run({ client, io, json, values }) {
      const only = optString(values, 'snapshot');
      const r = await client.call('events.history', only === undefined ? {} : { id: needSnapshotId({ id: only }, '--snapshot') });
      if (json) {
        printJson(io, r);
        return;
      }
      const rows = r.snapshots.flatMap((h) =>
        h.events.map((e) => [h.snapshotId, h.name ?? '-', h.endedMs === null ? 'held' : dateTimeText(h.endedMs), dateTimeText(e.timeMs), e.code, eventMeaning(e)]),
      );
      printTable(io, ['SNAPSHOT', 'NAME', 'ENDED', 'TIME', 'EVENT', 'MEANING'], rows, 'no events kept (they are kept per snapshot while the helper runs, until dismissed)');
      for (const h of r.snapshots) {
        if (h.dropped > 0) io.stdout(`snapshot ${h.snapshotId}: ${h.dropped} older event(s) left out to keep the history bounded\n`);
      }
    },
  },
  {
    name: 'events dismiss',
    summary: 'forget the events kept for a snapshot (a held snapshot\'s next events are kept again)',
    usage: '--id ID',
    help: [ID],
    example: 'blksnap-manager events dismiss --id 34c88ecd-cacf-45e4-a00d-f2ffa0f87e23',
    options: { id: { type: 'string', short: 'i' } },
    needsHelper: true,
    async run({ client, io, json, values }) {
      const r = await client.call('events.dismiss', { id: needSnapshotId(values) });
      if (json) printJson(io, r);
    },
  },
];
