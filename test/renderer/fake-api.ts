/** A fake contract API for renderer tests: scripted request handlers and emit() for events. */
import { CONTRACT_METHODS } from '../../app/shared/contract.js';
import type { BlksnapApi, EventMap, EventName, RequestName, RequestParams, RequestResult } from '../../app/shared/contract.js';
import { err } from '../../app/shared/result.js';
import type { Result } from '../../app/shared/result.js';

export type Handlers = {
  [K in RequestName]?: (params: RequestParams<K>) => Result<RequestResult<K>> | Promise<Result<RequestResult<K>>>;
};

export interface FakeApi {
  api: BlksnapApi;
  calls: { method: RequestName; params: unknown }[];
  handlers: Handlers;
  emit<K extends EventName>(event: K, payload: EventMap[K]): void;
  /** The params of every call of one request, in order (typed). */
  paramsOf<K extends RequestName>(method: K): RequestParams<K>[];
  listenerCount(event: EventName): number;
}

export function createFakeApi(handlers: Handlers = {}): FakeApi {
  const calls: { method: RequestName; params: unknown }[] = [];
  const listeners = new Map<EventName, Set<(p: unknown) => void>>();
  const api: Record<string, unknown> = {};
  for (const m of CONTRACT_METHODS) {
    if (m.event) {
      const name = m.name as EventName;
      api[name] = (cb: (p: unknown) => void) => {
        const set = listeners.get(name) ?? new Set();
        listeners.set(name, set);
        set.add(cb);
        return () => set.delete(cb);
      };
    } else {
      const name = m.name as RequestName;
      api[name] = async (params?: unknown) => {
        calls.push({ method: name, params });
        const handler = fake.handlers[name] as ((p: unknown) => unknown) | undefined;
        if (handler === undefined) return err('EOPNOTSUPP', `no fake handler for ${name}`);
        return handler(params);
      };
    }
  }
  const fake: FakeApi = {
    api: api as unknown as BlksnapApi,
    calls,
    handlers,
    emit(event, payload) {
      for (const cb of listeners.get(event) ?? []) cb(payload);
    },
    listenerCount: (event) => listeners.get(event)?.size ?? 0,
    paramsOf: <K extends RequestName>(method: K) => calls.filter((c) => c.method === method).map((c) => c.params as RequestParams<K>),
  };
  return fake;
}
