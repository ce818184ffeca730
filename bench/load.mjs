#!/usr/bin/env node
// Load benchmark of `hearth serve`: total generation tokens/s with 1, 4 and 8 parallel slots.
//
//   node bench/load.mjs MODEL.gguf [--slots 1,4,8] [--seconds 20] [--max-tokens 64] [--threads 2]
//
// For each slot count P it starts `hearth serve MODEL --parallel P` on a loopback port and runs
// P clients, each sending streamed chat requests (greedy, max_tokens tokens, a different short
// prompt each time) back to back for the given number of seconds. Tokens are counted from the
// usage the server reports (stream_options.include_usage) for the requests that finished in
// the window, plus the content chunks of those cut off at its end. Prints a Markdown table (and
// the same as JSON with --json) with total tokens/s and its ratio to 1 slot. Loopback only,
// bounded in time: slots.length × (seconds + start-up).
import { startServer } from '../tests/e2e/server.mjs';

function parseArgs(argv) {
  const o = { model: null, slots: [1, 4, 8], seconds: 20, maxTokens: 64, threads: 2, json: false, ctx: 1024 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--slots') o.slots = argv[++i].split(',').map(Number);
    else if (a === '--seconds') o.seconds = Number(argv[++i]);
    else if (a === '--max-tokens') o.maxTokens = Number(argv[++i]);
    else if (a === '--threads') o.threads = Number(argv[++i]);
    else if (a === '-c') o.ctx = Number(argv[++i]);
    else if (a === '--json') o.json = true;
    else if (!o.model) o.model = a;
    else throw new Error(`unknown argument ${a}`);
  }
  if (!o.model) throw new Error('usage: node bench/load.mjs MODEL.gguf [--slots 1,4,8] [--seconds S] [--max-tokens N] [--threads T]');
  return o;
}

// One streamed request; calls onToken for each content chunk; resolves with the usage.
async function request(url, model, prompt, maxTokens, onToken, signal) {
  const r = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: prompt }], max_tokens: maxTokens, temperature: 0, stream: true, stream_options: { include_usage: true } }),
    signal,
  });
  if (!r.ok) throw new Error(`HTTP ${r.status}: ${await r.text()}`);
  const decoder = new TextDecoder();
  let buf = '';
  let usage = null;
  for await (const bytes of r.body) {
    buf += decoder.decode(bytes, { stream: true });
    let nl;
    while ((nl = buf.indexOf('\n\n')) >= 0) {
      const event = buf.slice(0, nl);
      buf = buf.slice(nl + 2);
      if (!event.startsWith('data: ') || event === 'data: [DONE]') continue;
      const chunk = JSON.parse(event.slice(6));
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices ?? []) if (c.delta?.content) onToken();
    }
  }
  return usage;
}

async function measure(o, slots) {
  const server = await startServer([o.model, '--parallel', String(slots), '-c', String(o.ctx), '-t', String(o.threads)], { timeoutMs: 300000 });
  try {
    const model = (await (await fetch(`${server.url}/v1/models`)).json()).data[0].id;
    await request(server.url, model, 'warm up', 4, () => {}); // loads the model
    const ac = new AbortController();
    let finished = 0; // tokens of finished requests (from usage)
    let partial = 0;  // content chunks of requests cut off at the end
    let requests = 0;
    const t0 = performance.now();
    const deadline = t0 + o.seconds * 1000;
    const client = async (id) => {
      let k = 0;
      while (performance.now() < deadline) {
        let chunks = 0;
        try {
          const usage = await request(server.url, model, `Client ${id}, request ${k++}: and it came to pass that`, o.maxTokens, () => chunks++, ac.signal);
          finished += usage ? usage.completion_tokens : chunks;
          requests++;
        } catch (e) {
          if (e.name !== 'AbortError') throw e;
          partial += chunks;
        }
      }
    };
    const timer = setTimeout(() => ac.abort(), o.seconds * 1000);
    await Promise.all(Array.from({ length: slots }, (_, i) => client(i)));
    clearTimeout(timer);
    const seconds = (performance.now() - t0) / 1000;
    return { slots, clients: slots, seconds, requests, tokens: finished + partial, tokens_per_s: (finished + partial) / seconds };
  } finally {
    await server.stop();
  }
}

const o = parseArgs(process.argv.slice(2));
const rows = [];
for (const p of o.slots) {
  const r = await measure(o, p);
  rows.push(r);
  process.stderr.write(`slots ${p}: ${r.tokens} tokens in ${r.seconds.toFixed(1)} s = ${r.tokens_per_s.toFixed(1)} t/s (${r.requests} requests)\n`);
}
const base = rows.find((r) => r.slots === 1)?.tokens_per_s;
if (o.json) {
  console.log(JSON.stringify(rows.map((r) => ({ ...r, ratio_to_1_slot: base ? r.tokens_per_s / base : null })), null, 2));
} else {
  console.log(`| slots | clients | requests | generated tokens | seconds | total t/s | × 1 slot |`);
  console.log(`|---:|---:|---:|---:|---:|---:|---:|`);
  for (const r of rows) {
    const ratio = base ? (r.tokens_per_s / base).toFixed(2) : '-';
    console.log(`| ${r.slots} | ${r.clients} | ${r.requests} | ${r.tokens} | ${r.seconds.toFixed(1)} | ${r.tokens_per_s.toFixed(1)} | ${ratio} |`);
  }
}
