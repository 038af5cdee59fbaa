// Workflow code must be deterministic: it runs in Temporal's sandbox and is replayed from history.
// This lint keeps Node built-ins, I/O libraries and runtime imports of activities (and of the lib/, client/,
// infra/ and workers/ code) out of workflows/.
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

const nodeBuiltins = builtinModules.flatMap((name) => [name, `node:${name}`]);
const sideEffectLibraries = [
  '@temporalio/client', '@temporalio/worker', '@temporalio/activity', 'dockerode', 'openai', '@linear/sdk',
  'uuid', 'nanoid', 'node-fetch', 'axios', 'tar-stream', 'yaml', 'liquidjs',
];

export default tseslint.config(
  { ignores: ['node_modules/**', '.cadenza/**', 'coverage/**'] },
  {
    files: ['**/*.ts'],
    languageOptions: { parser: tseslint.parser },
    plugins: { '@typescript-eslint': tseslint.plugin },
    rules: {},
  },
  {
    files: ['workflows/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': ['error', {
        paths: [...nodeBuiltins, ...sideEffectLibraries].map((name) => ({
          name,
          message: 'Workflow code must be deterministic: do I/O in an activity.',
        })),
        patterns: [
          {
            group: ['**/activities', '**/activities/*', '**/lib/**', '**/client/**', '**/infra/**', '**/workers/**'],
            allowTypeImports: true,
            message: 'Workflows import activity and library types only (import type ...); call activities through proxyActivities.',
          },
        ],
      }],
      'no-restricted-globals': ['error',
        { name: 'process', message: 'No process access in workflows: pass values as workflow input.' },
        { name: 'fetch', message: 'No network I/O in workflows: use an activity.' },
        { name: 'Buffer', message: 'Buffer is a Node built-in and not available in workflows.' },
        { name: 'require', message: 'Use ES imports of deterministic modules only.' },
        { name: 'setInterval', message: 'Use workflow timers (sleep / condition).' },
      ],
    },
  },
);
