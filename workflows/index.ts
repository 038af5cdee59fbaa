export { issueWorkflow } from './issue.ts';
