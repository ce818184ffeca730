// 16 clients streaming at once against --parallel 4: all complete, and with greedy sampling
// each output equals the output of the same request run alone.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startServer } from './server.mjs';

let server;
let client;
let model;

before(async () => {
  server = await startServer(['--parallel', '4', '-c', '512']);
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'none', maxRetries: 0, timeout: 300000 });
  model = (await client.models.list()).data[0].id;
});

after(async () => {
  assert.equal(await server.stop(), 0);
});

const prompts = Array.from({ length: 16 }, (_, i) => `Chapter ${i + 1}. And ${['God', 'Moses', 'the LORD', 'Abraham'][i % 4]} said unto`);

async function streamed(prompt) {
  const stream = await client.chat.completions.create({ model, messages: [{ role: 'user', content: prompt }], max_tokens: 24, temperature: 0, stream: true });
  let text = '';
  let finish = null;
  for await (const chunk of stream) {
    for (const c of chunk.choices) {
      text += c.delta.content ?? '';
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  return { text, finish };
}

test('16 concurrent streams with 4 slots equal the same requests run alone', async () => {
  const alone = [];
  for (const p of prompts) alone.push(await streamed(p));
  const together = await Promise.all(prompts.map((p) => streamed(p)));
  for (let i = 0; i < prompts.length; i++) {
    assert.ok(together[i].finish !== null, `request ${i} completed`);
    assert.equal(together[i].text, alone[i].text, `request ${i}`);
  }
  assert.ok(new Set(alone.map((r) => r.text)).size > 1, 'the prompts give different answers');
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  assert.match(metrics, /hearth_requests_total\s+\d+/);
});

test('a client that disconnects frees its slot', async () => {
  const ac = new AbortController();
  const stream = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'And it came to pass' }], max_tokens: 400, temperature: 0, stream: true }, { signal: ac.signal });
  let n = 0;
  try {
    for await (const chunk of stream) {
      if (++n === 3) ac.abort();
    }
  } catch (e) {
    assert.equal(e.name, 'APIUserAbortError');
  }
  // Nothing is left running, and all 4 slots serve 4 requests at once.
  const running = async () => Number((await (await fetch(`${server.url}/metrics`)).text()).match(/llamacpp:requests_processing(?:\{[^}]*\})?\s+(\d+)/)[1]);
  for (let i = 0; i < 50 && (await running()) !== 0; i++) await new Promise((r) => setTimeout(r, 100));
  assert.equal(await running(), 0);
  const r = await Promise.all([0, 1, 2, 3].map((i) => streamed(prompts[i])));
  for (const x of r) assert.ok(x.finish);
});
