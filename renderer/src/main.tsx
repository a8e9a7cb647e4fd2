/** Entry point: the store and its event subscriptions are module-level, created once per page. */
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { getApi, sessionSelectionMemory } from './api.js';
import { App } from './App.js';
import { createAppStore } from './store/app-store.js';
import { StoreProvider } from './store/context.js';
import { wireEvents } from './store/wire-events.js';
import './styles.css';

const api = getApi();
const store = createAppStore(api, { selectionMemory: sessionSelectionMemory() });
wireEvents(api, store);

const container = document.getElementById('root');
if (container === null) throw new Error('#root is missing from index.html');
createRoot(container).render(
  <StrictMode>
    <StoreProvider store={store}>
      <App />
    </StoreProvider>
  </StrictMode>,
);
