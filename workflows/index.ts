export { issueWorkflow } from './issue.ts';
export { pollerWorkflow } from './poller.ts';
