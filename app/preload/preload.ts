import type { RequestName } from '../shared/contract.js';
import electron = require('electron');
const x: RequestName = 'getStatus';
electron.contextBridge.exposeInMainWorld('t', { x });
