import { test } from 'node:test';
import assert from 'node:assert/strict';
import { capitalize, wordCount } from '../src/index.js';

test('capitalize upper-cases the first letter only', () => {
  assert.equal(capitalize('hello'), 'Hello');
  assert.equal(capitalize('hello world'), 'Hello world');
  assert.equal(capitalize('hELLO'), 'HELLO');
});

test('capitalize leaves empty and non-letter starts alone', () => {
  assert.equal(capitalize(''), '');
  assert.equal(capitalize('42 apples'), '42 apples');
});

test('wordCount counts whitespace-separated words', () => {
  assert.equal(wordCount('one two three'), 3);
  assert.equal(wordCount('  spaced   out\twords\n'), 3);
  assert.equal(wordCount('single'), 1);
});

test('wordCount is 0 for empty or blank text', () => {
  assert.equal(wordCount(''), 0);
  assert.equal(wordCount(' \t\n '), 0);
});
