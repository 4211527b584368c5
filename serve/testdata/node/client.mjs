// Drives a running `purpcode serve` with the official openai client and
// prints what it saw as one JSON object; serve/node_test.go checks it.
// usage: node client.mjs BASE_URL MODEL
import OpenAI from "openai";

const [baseURL, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0, timeout: 120000 });
const out = {};
const messages = [{ role: "user", content: "How do I hash a password?" }];

out.models = (await client.models.list()).data.map((m) => m.id);

const chat = await client.chat.completions.create({
  model, messages, temperature: 0, max_tokens: 40, logprobs: true, top_logprobs: 2,
});
out.chat = {
  content: chat.choices[0].message.content,
  finish: chat.choices[0].finish_reason,
  logprobTokens: chat.choices[0].logprobs.content.map((t) => t.token).join(""),
  topLogprobs: chat.choices[0].logprobs.content.map((t) => t.top_logprobs.map((a) => [a.token, a.logprob])),
  usage: chat.usage,
};

const stream = await client.chat.completions.create({
  model, messages, temperature: 0.9, seed: 7, n: 2, max_tokens: 40, stream: true,
  stream_options: { include_usage: true },
});
const streamed = ["", ""];
const finish = [null, null];
let usage = null;
for await (const chunk of stream) {
  if (chunk.usage) usage = chunk.usage;
  for (const c of chunk.choices) {
    streamed[c.index] += c.delta.content ?? "";
    if (c.finish_reason) finish[c.index] = c.finish_reason;
  }
}
out.stream = { texts: streamed, finish, usage };

const comp = await client.completions.create({
  model, prompt: ["import os\n", "def read_file(path):"], max_tokens: 16, temperature: 0, logprobs: 1,
});
out.completions = comp.choices.map((c) => ({
  index: c.index, text: c.text, tokens: c.logprobs.tokens.join(""), topLogprobs: c.logprobs.top_logprobs,
}));

out.errors = {};
for (const [name, req] of [
  ["unknown_model", { model: "no-such-model", messages }],
  ["bad_temperature", { model, messages, temperature: 5 }],
]) {
  try {
    await client.chat.completions.create(req);
    out.errors[name] = { status: 200 };
  } catch (e) {
    out.errors[name] = { status: e.status, code: e.code, param: e.param, type: e.type, cls: e.constructor.name };
  }
}

// Leave a long stream early: the server must drop the sequence.
const ac = new AbortController();
const long = await client.chat.completions.create(
  { model, messages, max_tokens: 500, ignore_eos: true, temperature: 1, stream: true },
  { signal: ac.signal },
);
let seen = 0;
let error = null;
try {
  for await (const chunk of long) {
    if (chunk.choices[0]?.delta?.content) seen++;
    if (seen === 2) ac.abort();
  }
} catch (e) {
  error = e.constructor.name;
}
// The client ends the iteration quietly (or with an abort error).
out.abort = { aborted: ac.signal.aborted, seen, error };

console.log(JSON.stringify(out));
