import { defineConfig } from 'vitest/config';

// Two tiers: pure unit tests run alone; everything touching Temporal, Docker or git shares one
// Temporal dev server started by the global setup and runs one file at a time (2 cores).
export default defineConfig({
  test: {
    reporters: ['verbose'],
    pool: 'forks',
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts', 'test/replay/**/*.test.ts'],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/{workflows,integration,e2e}/**/*.test.ts', 'test/chaos/**/*.test.ts'],
          globalSetup: ['test/setup/temporal-server.ts'],
          fileParallelism: false,
          testTimeout: 240_000,
          hookTimeout: 240_000,
        },
      },
    ],
  },
});
