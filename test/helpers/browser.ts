/**
 * The Temporal Web UI as a person sees it, in headless Chromium (Debian's, installed by infra for the
 * tests) driven by playwright-core. Screenshots are kept under test-artifacts/ for people to look at.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { projectRoot } from '../../infra/paths.ts';
import { ensureChromium, HEADLESS_ARGS } from '../../infra/browser.ts';

export const artifactsDir = path.join(projectRoot, 'test-artifacts');

export async function openBrowser(): Promise<Browser> {
  const { path: executablePath } = await ensureChromium();
  return chromium.launch({ executablePath, args: HEADLESS_ARGS.filter((arg) => arg !== '--headless'), headless: true });
}

/**
 * Opens a workflow's page in the UI, on one of its tabs as a person would click it ("User Metadata"
 * holds the summary and the current details); `ready` is text that appears once it has rendered.
 */
export async function openWorkflowPage(browser: Browser, uiUrl: string, workflowId: string, ready: string, tab?: string): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1440, height: 2400 } });
  await page.goto(`${uiUrl}/namespaces/default/workflows/${encodeURIComponent(workflowId)}`);
  try {
    if (tab) await page.getByText(tab, { exact: true }).first().click({ timeout: 60_000 });
    // The UI renders Markdown in sandboxed frames: look in every frame.
    const deadline = Date.now() + 60_000;
    while (!(await renderedText(page)).includes(ready)) {
      if (Date.now() > deadline) throw new Error(`"${ready}" did not appear within 60 s`);
      await page.waitForTimeout(250);
    }
  } catch (error) {
    // What the page showed instead, for the person reading the failure.
    const file = await screenshot(page, `not-rendered-${workflowId}`);
    const text = await renderedText(page);
    throw new Error(`the UI did not show "${ready}" for ${workflowId} (screenshot ${file}); it showed:\n${text.slice(0, 3000)}`, { cause: error });
  }
  return page;
}

/** The text a person sees on the page, including what the UI renders inside frames. */
export async function renderedText(page: Page): Promise<string> {
  const texts = await Promise.all(page.frames().map((frame) => frame.locator('body').innerText({ timeout: 1_000 }).catch(() => '')));
  return texts.join('\n');
}

export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(artifactsDir, { recursive: true });
  const file = path.join(artifactsDir, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}
