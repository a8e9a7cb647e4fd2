// Prints the closing line of a test run ("N passed, N failed, N skipped")
// from vitest's JSON report, and exits non-zero when nothing ran.
import { readFileSync } from 'node:fs';

const file = process.argv[2] ?? 'test-results/vitest.json';
const report = JSON.parse(readFileSync(file, 'utf8'));
const passed = report.numPassedTests ?? 0;
const failed = report.numFailedTests ?? 0;
const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
const suitesFailed = report.numFailedTestSuites ?? 0;
for (const suite of report.testResults ?? []) {
  for (const t of suite.assertionResults ?? []) {
    if (t.status === 'skipped' || t.status === 'pending') {
      const why = t.failureMessages?.length ? ` (${t.failureMessages.join('; ')})` : '';
      console.log(`skipped: ${t.fullName}${why}`);
    }
  }
}
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
if (failed > 0 || suitesFailed > 0 || passed === 0) process.exit(1);
