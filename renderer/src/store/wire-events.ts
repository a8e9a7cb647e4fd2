/** Event streams of the contract, written into the store. Returns a function that unsubscribes all. */
import type { BlksnapApi } from '../../../app/shared/contract.js';
import type { AppStore } from './app-store.js';

export function wireEvents(api: BlksnapApi, store: AppStore): () => void {
  const offs = [
    api.onSnapshotEvent((event) => {
      store.getState().addEvent(event);
      // An event changes what snapshot info says (error codes, storage): refresh it.
      void store.getState().refreshSnapshots();
    }),
    api.onHelperState((helper) => {
      const previous = store.getState().helper.state;
      store.getState().setHelperState(helper);
      if (helper.state === 'connected' && previous !== 'connected') {
        const s = store.getState();
        void s.refreshStatus();
        void s.refreshDevices();
        void s.refreshSnapshots();
        void s.loadEventHistory();
      }
    }),
    api.onWorkloadProgress((progress) => store.getState().applyWorkloadProgress(progress)),
    api.onJob((job) => store.getState().applyJob(job)),
  ];
  return () => {
    for (const off of offs) off();
  };
}
