/** Electron entry (package.json "main": dist/app/main/main.js). */
import { startApp } from './app-main.js';

startApp();
