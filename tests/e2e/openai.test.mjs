// The official OpenAI Node client against `hearth serve`: models, chat (plain and streamed),
// JSON-schema output, tool-call round trip, embeddings (base64, the client's default, and
// float), and the error cases (unknown model 404, bad JSON 400, missing or wrong key 401).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import OpenAI from 'openai';
import { startServer, testdata, norm } from './server.mjs';

const KEY = 'sk-hearth-e2e';
let server;
let client;
let kjv; // the embedded default model's id
let qwen3; // a second model, so that an unknown name is an error (not single-model mode)

before(async () => {
  // Qwen 3's chat template for both models: it renders tool calls and tool results (the demo
  // model's own template has no place for them).
  server = await startServer(['--api-key', KEY, '--parallel', '2', '-c', '1024',
    path.join(testdata, 'models', 'qwen3-Q8_0.gguf'), '--embedded-model',
    '--chat-template-file', path.join(testdata, 'chat-templates', 'Qwen-Qwen3-0.6B.jinja')]);
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: KEY, maxRetries: 0 });
  const ids = (await client.models.list()).data.map((m) => m.id);
  kjv = ids.find((id) => id.includes('kjv'));
  qwen3 = ids.find((id) => id.includes('qwen3'));
  assert.ok(kjv && qwen3, `model list: ${ids.join(', ')}`);
});

after(async () => {
  assert.equal(await server.stop(), 0, 'hearth serve exits 0 on SIGTERM');
});

test('models.list and models.retrieve', async () => {
  const list = await client.models.list();
  assert.ok(list.data.length >= 2);
  for (const m of list.data) {
    assert.equal(m.object, 'model');
    assert.equal(typeof m.created, 'number');
  }
  const one = await client.models.retrieve(kjv);
  assert.equal(one.id, kjv);
});

test('chat completion: content, usage and finish_reason length', async () => {
  const r = await client.chat.completions.create({
    model: kjv,
    messages: [{ role: 'user', content: 'And God said' }],
    max_tokens: 8,
    temperature: 0,
  });
  assert.equal(r.object, 'chat.completion');
  assert.match(r.id, /^chatcmpl-/);
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(typeof r.choices[0].message.content, 'string');
  assert.ok(r.choices[0].message.content.length > 0);
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.equal(r.usage.completion_tokens, 8);
  assert.ok(r.usage.prompt_tokens > 3);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + 8);
});

test('streamed chat equals the same request unstreamed, with usage at the end', async () => {
  const req = { model: kjv, messages: [{ role: 'user', content: 'In the beginning' }], max_tokens: 16, temperature: 0 };
  const whole = await client.chat.completions.create(req);
  const stream = await client.chat.completions.create({ ...req, stream: true, stream_options: { include_usage: true } });
  let text = '';
  let finish = null;
  let usage = null;
  let chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      if (c.delta.content) text += c.delta.content;
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.ok(chunks > 2);
  assert.equal(text, whole.choices[0].message.content);
  assert.equal(finish, whole.choices[0].finish_reason);
  assert.deepEqual(usage?.completion_tokens, whole.usage.completion_tokens);
  assert.ok(usage.prompt_tokens_details.cached_tokens > 0, 'the second run reuses the cached prompt');
});

test('response_format json_schema gives JSON that validates', async () => {
  const schema = {
    type: 'object',
    properties: {
      colour: { type: 'string', enum: ['red', 'green', 'blue'] },
      ok: { type: 'boolean' },
      tags: { type: 'array', items: { type: 'string', enum: ['a', 'b'] }, maxItems: 3 },
    },
    required: ['colour', 'ok', 'tags'],
    additionalProperties: false,
  };
  for (const seed of [1, 2, 3]) {
    const r = await client.chat.completions.create({
      model: kjv,
      messages: [{ role: 'user', content: 'Describe the sky as JSON.' }],
      response_format: { type: 'json_schema', json_schema: { name: 'sky', schema, strict: true } },
      max_tokens: 800,
      temperature: 1,
      seed,
      reasoning_effort: 'none', // the template's thinking would come first, unbounded
    });
    const v = JSON.parse(r.choices[0].message.content);
    assert.ok(['red', 'green', 'blue'].includes(v.colour), JSON.stringify(v));
    assert.equal(typeof v.ok, 'boolean');
    assert.ok(Array.isArray(v.tags) && v.tags.length <= 3 && v.tags.every((t) => t === 'a' || t === 'b'));
    assert.deepEqual(Object.keys(v).sort(), ['colour', 'ok', 'tags']);
  }
});

test('response_format json_object gives a JSON object', async () => {
  const r = await client.chat.completions.create({
    model: kjv,
    messages: [{ role: 'user', content: 'Answer in JSON.' }],
    response_format: { type: 'json_object' },
    max_tokens: 800,
    temperature: 0.5,
    reasoning_effort: 'none',
    seed: 7,
  });
  const v = JSON.parse(r.choices[0].message.content);
  assert.equal(typeof v, 'object');
  assert.ok(v !== null && !Array.isArray(v));
});

const weatherTool = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'The weather in a city',
    parameters: {
      type: 'object',
      properties: { city: { type: 'string', enum: ['Paris', 'Oslo'] }, unit: { type: 'string', enum: ['C', 'F'] } },
      required: ['city', 'unit'],
    },
  },
};

test('tool call round trip: forced call, tool result, answer', async () => {
  const messages = [{ role: 'user', content: 'What is the weather in Paris?' }];
  const forced = {
    model: kjv,
    messages,
    tools: [weatherTool],
    tool_choice: { type: 'function', function: { name: 'get_weather' } },
    max_tokens: 600,
    temperature: 0,
    reasoning_effort: 'none',
  };
  const r = await client.chat.completions.create(forced);
  const msg = r.choices[0].message;
  assert.equal(r.choices[0].finish_reason, 'tool_calls');
  assert.equal(msg.tool_calls.length, 1);
  const call = msg.tool_calls[0];
  assert.equal(call.type, 'function');
  assert.equal(call.function.name, 'get_weather');
  assert.ok(call.id.length > 0);
  const args = JSON.parse(call.function.arguments);
  assert.ok(['Paris', 'Oslo'].includes(args.city) && ['C', 'F'].includes(args.unit), call.function.arguments);

  // The same call streamed: deltas carry the id and name once, then pieces of the arguments.
  const stream = await client.chat.completions.create({ ...forced, stream: true });
  let name = '';
  let argText = '';
  let id = '';
  let finish = null;
  for await (const chunk of stream) {
    for (const c of chunk.choices) {
      for (const tc of c.delta.tool_calls ?? []) {
        assert.equal(tc.index, 0);
        if (tc.id) id = tc.id;
        if (tc.function?.name) name += tc.function.name;
        if (tc.function?.arguments) argText += tc.function.arguments;
      }
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.equal(name, 'get_weather');
  assert.ok(id.length > 0);
  assert.deepEqual(JSON.parse(argText), args);
  assert.equal(finish, 'tool_calls');

  // Round trip: the call and its result go back, and the model answers in text.
  messages.push(msg);
  messages.push({ role: 'tool', tool_call_id: call.id, content: '{"temperature": 21, "sky": "clear"}' });
  const answer = await client.chat.completions.create({ model: kjv, messages, tools: [weatherTool], max_tokens: 16, temperature: 0 });
  assert.equal(typeof answer.choices[0].message.content, 'string');
  assert.ok(answer.usage.prompt_tokens > r.usage.prompt_tokens, 'the tool result is part of the prompt');
});

test('completions (legacy) with stop and n', async () => {
  const r = await client.completions.create({ model: kjv, prompt: 'And God said', max_tokens: 12, temperature: 0.9, n: 2, seed: 3 });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices.length, 2);
  assert.deepEqual(r.choices.map((c) => c.index).sort(), [0, 1]);
  const first = await client.completions.create({ model: kjv, prompt: 'And God said', max_tokens: 12, temperature: 0 });
  const text = first.choices[0].text;
  assert.ok(text.length > 2);
  const stop = text.slice(1, 3);
  const cut = await client.completions.create({ model: kjv, prompt: 'And God said', max_tokens: 12, temperature: 0, stop: [stop] });
  assert.equal(cut.choices[0].text, text.slice(0, text.indexOf(stop)));
  assert.equal(cut.choices[0].finish_reason, 'stop');
});

test('logprobs: the greedy token is the most likely one', async () => {
  const r = await client.chat.completions.create({
    model: kjv, messages: [{ role: 'user', content: 'Let there be' }], max_tokens: 4, temperature: 0, logprobs: true, top_logprobs: 3,
  });
  const content = r.choices[0].logprobs.content;
  assert.equal(content.length, 4);
  for (const t of content) {
    assert.equal(t.top_logprobs.length, 3);
    assert.equal(t.top_logprobs[0].token, t.token);
    assert.ok(t.logprob <= 0 && Math.abs(t.logprob - t.top_logprobs[0].logprob) < 1e-6);
    assert.ok(t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob);
  }
});

test('embeddings: base64 (the client default) and float agree, L2-normalised', async () => {
  const b64 = await client.embeddings.create({ model: kjv, input: ['light', 'darkness and light'] });
  assert.equal(b64.data.length, 2);
  const flt = await client.embeddings.create({ model: kjv, input: ['light', 'darkness and light'], encoding_format: 'float' });
  for (let i = 0; i < 2; i++) {
    const a = b64.data[i].embedding;
    const b = flt.data[i].embedding;
    assert.equal(a.length, b.length);
    assert.ok(a.length >= 64);
    assert.ok(Math.abs(norm(a) - 1) < 1e-4, `norm ${norm(a)}`);
    for (let j = 0; j < a.length; j++) assert.ok(Math.abs(a[j] - b[j]) < 1e-6);
  }
  assert.notDeepEqual(b64.data[0].embedding, b64.data[1].embedding);
  assert.ok(b64.usage.prompt_tokens >= 3);
});

test('unknown model is 404', async () => {
  await assert.rejects(
    client.chat.completions.create({ model: 'no-such-model:7b', messages: [{ role: 'user', content: 'hi' }] }),
    (e) => e instanceof OpenAI.NotFoundError && e.status === 404,
  );
});

test('wrong or missing key is 401; /health needs none', async () => {
  const bad = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'sk-wrong', maxRetries: 0 });
  await assert.rejects(bad.models.list(), (e) => e instanceof OpenAI.AuthenticationError && e.status === 401);
  const none = await fetch(`${server.url}/v1/models`);
  assert.equal(none.status, 401);
  const body = await none.json();
  assert.equal(typeof body.error.message, 'string');
  assert.equal((await fetch(`${server.url}/health`)).status, 200);
});

test('malformed JSON is 400 with an OpenAI error object', async () => {
  const r = await fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' },
    body: '{"model": "x", "messages": [',
  });
  assert.equal(r.status, 400);
  const body = await r.json();
  assert.equal(body.error.type, 'invalid_request_error');
  assert.equal(typeof body.error.message, 'string');
});

test('a prompt longer than the context is 400 and says the numbers', async () => {
  const long = 'And God said, Let there be light: and there was light. '.repeat(200);
  await assert.rejects(
    client.chat.completions.create({ model: kjv, messages: [{ role: 'user', content: long }], max_tokens: 4 }),
    (e) => e.status === 400 && /\d+/.test(e.message) && /1024/.test(e.message),
  );
});
