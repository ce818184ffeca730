// Thinking on and off through both clients, on a Qwen 3.5 model with Qwen 3.5's chat template
// (whose prompt opens <think> when thinking is on and writes an empty thinking block when off).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import OpenAI from 'openai';
import { Ollama } from 'ollama';
import { startServer, testdata } from './server.mjs';

let server;
let openai;
let ollama;
let model;

before(async () => {
  server = await startServer([path.join(testdata, 'models', 'qwen35-Q8_0.gguf'), '--chat-template-file',
    path.join(testdata, 'chat-templates', 'Qwen3.5-4B.jinja'), '-c', '512']);
  openai = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'none', maxRetries: 0 });
  ollama = new Ollama({ host: server.url });
  model = (await openai.models.list()).data[0].id;
});

after(async () => {
  assert.equal(await server.stop(), 0);
});

const messages = [{ role: 'user', content: 'Why is the sky blue?' }];

test('OpenAI: enable_thinking true gives reasoning_content, false gives none', async () => {
  const on = await openai.chat.completions.create({ model, messages, max_tokens: 12, temperature: 0, chat_template_kwargs: { enable_thinking: true } });
  assert.ok(on.choices[0].message.reasoning_content.length > 0, JSON.stringify(on.choices[0].message));
  const off = await openai.chat.completions.create({ model, messages, max_tokens: 12, temperature: 0, chat_template_kwargs: { enable_thinking: false } });
  assert.equal(off.choices[0].message.reasoning_content ?? '', '');
  assert.ok(off.choices[0].message.content.length > 0);
  // reasoning_effort "none" also turns it off.
  const none = await openai.chat.completions.create({ model, messages, max_tokens: 12, temperature: 0, reasoning_effort: 'none' });
  assert.equal(none.choices[0].message.content, off.choices[0].message.content);
});

test('OpenAI streaming: reasoning arrives as reasoning_content deltas', async () => {
  const stream = await openai.chat.completions.create({ model, messages, max_tokens: 12, temperature: 0, stream: true, chat_template_kwargs: { enable_thinking: true } });
  let reasoning = '';
  let content = '';
  for await (const chunk of stream) {
    for (const c of chunk.choices) {
      reasoning += c.delta.reasoning_content ?? '';
      content += c.delta.content ?? '';
    }
  }
  const whole = await openai.chat.completions.create({ model, messages, max_tokens: 12, temperature: 0, chat_template_kwargs: { enable_thinking: true } });
  assert.equal(reasoning, whole.choices[0].message.reasoning_content);
  assert.equal(content, whole.choices[0].message.content ?? '');
  assert.ok(!reasoning.includes('<think>') && !content.includes('<think>'));
});

test('Ollama: think true fills message.thinking, false leaves it out', async () => {
  const on = await ollama.chat({ model, messages, think: true, options: { temperature: 0, num_predict: 12 } });
  assert.ok(on.message.thinking.length > 0);
  const off = await ollama.chat({ model, messages, think: false, options: { temperature: 0, num_predict: 12 } });
  assert.ok(!off.message.thinking);
  assert.ok(off.message.content.length > 0);
});
