// The official Ollama JavaScript client against `hearth serve`: version, tags, show, ps, chat
// and generate (whole and streamed as NDJSON), format (json and a schema), tools, embed, options,
// the timing fields, and an unknown model (404).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Ollama } from 'ollama';
import { startServer, testdata, norm } from './server.mjs';

let server;
let ollama;
let kjv;

before(async () => {
  // Qwen 3's chat template for both models: it renders tools and tool results.
  server = await startServer(['--parallel', '2', '-c', '1024', path.join(testdata, 'models', 'qwen3-Q8_0.gguf'), '--embedded-model',
    '--chat-template-file', path.join(testdata, 'chat-templates', 'Qwen-Qwen3-0.6B.jinja')]);
  ollama = new Ollama({ host: server.url });
  const tags = await ollama.list();
  kjv = tags.models.map((m) => m.name).find((n) => n.includes('kjv'));
  assert.ok(kjv, JSON.stringify(tags));
});

after(async () => {
  assert.equal(await server.stop(), 0);
});

test('version, tags, show, ps', async () => {
  const v = await ollama.version();
  assert.match(v.version, /^\d+\.\d+\.\d+/);
  const tags = await ollama.list();
  assert.ok(tags.models.length >= 2);
  for (const m of tags.models) {
    assert.match(m.name, /:/);
    assert.equal(m.model, m.name);
    assert.ok(m.size > 0);
    assert.match(m.digest, /^[0-9a-f]{64}$/);
    assert.equal(typeof m.details.family, 'string');
    assert.equal(typeof m.details.quantization_level, 'string');
  }
  const show = await ollama.show({ model: kjv });
  assert.equal(typeof show.details.parameter_size, 'string');
  assert.equal(typeof show.model_info['general.architecture'], 'string');
  assert.ok(show.capabilities.includes('completion'));
  await ollama.generate({ model: kjv, prompt: 'And', options: { num_predict: 1 } });
  const ps = await ollama.ps();
  assert.ok(ps.models.some((m) => m.name === kjv), JSON.stringify(ps));
});

test('chat: whole and streamed give the same text; timing fields in ns', async () => {
  const req = { model: kjv, messages: [{ role: 'user', content: 'And God said' }], options: { temperature: 0, num_predict: 12 } };
  const whole = await ollama.chat(req);
  assert.equal(whole.done, true);
  assert.equal(whole.done_reason, 'length');
  assert.equal(whole.message.role, 'assistant');
  assert.ok(whole.message.content.length > 0);
  assert.equal(whole.eval_count, 12);
  assert.ok(whole.prompt_eval_count > 3);
  for (const k of ['total_duration', 'load_duration', 'prompt_eval_duration', 'eval_duration']) {
    assert.equal(Number.isInteger(whole[k]), true, k);
  }
  assert.ok(whole.total_duration >= whole.eval_duration && whole.eval_duration > 0);
  const stream = await ollama.chat({ ...req, stream: true });
  let text = '';
  let last;
  for await (const part of stream) {
    text += part.message.content;
    last = part;
  }
  assert.equal(text, whole.message.content);
  assert.equal(last.done, true);
  assert.equal(last.eval_count, 12);
});

test('generate with options: seed reproduces, stop cuts', async () => {
  const a = await ollama.generate({ model: kjv, prompt: 'In the beginning', options: { temperature: 1.0, seed: 42, num_predict: 10, top_k: 20, top_p: 0.9, min_p: 0.01, repeat_penalty: 1.1 } });
  const b = await ollama.generate({ model: kjv, prompt: 'In the beginning', options: { temperature: 1.0, seed: 42, num_predict: 10, top_k: 20, top_p: 0.9, min_p: 0.01, repeat_penalty: 1.1 } });
  assert.equal(a.response, b.response);
  const greedy = await ollama.generate({ model: kjv, prompt: 'In the beginning', options: { temperature: 0, num_predict: 10 } });
  const stop = greedy.response.slice(2, 4);
  const cut = await ollama.generate({ model: kjv, prompt: 'In the beginning', options: { temperature: 0, num_predict: 10, stop: [stop] } });
  assert.equal(cut.response, greedy.response.slice(0, greedy.response.indexOf(stop)));
  assert.equal(cut.done_reason, 'stop');
});

test('format: json and a schema', async () => {
  const j = await ollama.chat({ model: kjv, messages: [{ role: 'user', content: 'JSON please' }], format: 'json', think: false, options: { temperature: 0.5, seed: 1, num_predict: 800 } });
  const v = JSON.parse(j.message.content);
  assert.equal(typeof v, 'object');
  const schema = { type: 'object', properties: { n: { type: 'integer', minimum: 0, maximum: 99 }, who: { type: 'string', enum: ['Adam', 'Eve'] } }, required: ['n', 'who'] };
  const s = await ollama.chat({ model: kjv, messages: [{ role: 'user', content: 'Who?' }], format: schema, think: false, options: { temperature: 1, seed: 5, num_predict: 800 } });
  const w = JSON.parse(s.message.content);
  assert.ok(Number.isInteger(w.n) && w.n >= 0 && w.n <= 99, s.message.content);
  assert.ok(['Adam', 'Eve'].includes(w.who));
});

test('embed: normalised vectors, one per input; legacy embeddings', async () => {
  const r = await ollama.embed({ model: kjv, input: ['light', 'the waters'] });
  assert.equal(r.embeddings.length, 2);
  for (const e of r.embeddings) assert.ok(Math.abs(norm(e) - 1) < 1e-4);
  assert.ok(r.prompt_eval_count >= 2);
  const legacy = await ollama.embeddings({ model: kjv, prompt: 'light' });
  assert.equal(legacy.embedding.length, r.embeddings[0].length);
  for (let i = 0; i < legacy.embedding.length; i++) assert.ok(Math.abs(legacy.embedding[i] - r.embeddings[0][i]) < 1e-5);
});

test('tools: a forced call comes back with arguments as an object', async () => {
  // Ollama has no tool_choice: the model decides. Whatever it does, the answer is well formed,
  // and a tool result in the history is accepted.
  const tools = [{ type: 'function', function: { name: 'get_time', description: 'the time', parameters: { type: 'object', properties: { tz: { type: 'string' } }, required: ['tz'] } } }];
  const r = await ollama.chat({ model: kjv, messages: [{ role: 'user', content: 'What time is it in Oslo?' }], tools, options: { temperature: 0, num_predict: 32 } });
  assert.equal(r.message.role, 'assistant');
  for (const c of r.message.tool_calls ?? []) {
    assert.equal(c.function.name, 'get_time');
    assert.equal(typeof c.function.arguments, 'object');
  }
  const follow = await ollama.chat({
    model: kjv,
    messages: [
      { role: 'user', content: 'What time is it in Oslo?' },
      { role: 'assistant', content: '', tool_calls: [{ function: { name: 'get_time', arguments: { tz: 'Europe/Oslo' } } }] },
      { role: 'tool', content: '12:00' },
    ],
    tools,
    options: { temperature: 0, num_predict: 8 },
  });
  assert.equal(follow.done, true);
  assert.ok(follow.prompt_eval_count > r.prompt_eval_count);
});

test('unknown model is 404', async () => {
  await assert.rejects(ollama.chat({ model: 'no-such-model:1b', messages: [{ role: 'user', content: 'hi' }] }), (e) => e.status_code === 404);
});
