/** The local tracker: the mapping (local/tracker.ts) over a folder of issue files (local/files.ts). */
export { LocalTracker, type LocalTrackerOptions } from './local/tracker.ts';
export { IssueFolder, issueFileName, writeIssueFile, type IssueFileFields } from './local/files.ts';
