// The official openai package for Node against /v1/chat/completions, driven from the
// Python tests. Usage: node openai_client.mjs '<json options>'; prints one JSON line:
// {"text", "chunks", "finish", "usage", "toolCalls", "error": {"name", "status", "message"}}
import OpenAI from "openai";

const options = JSON.parse(process.argv[2]);
const client = new OpenAI({ baseURL: `${options.base}/v1`, apiKey: options.apiKey ?? "unused",
                           maxRetries: 0 });
const result = { text: "", chunks: 0, finish: null, usage: null, toolCalls: null, error: null };
try {
  if (options.helper) {  // the SDK's own accumulator: chat.completions.stream()
    const stream = client.chat.completions.stream({ ...options.request, stream: true });
    const final = await stream.finalChatCompletion();
    result.text = final.choices[0].message.content;
    result.toolCalls = final.choices[0].message.tool_calls ?? null;
    result.finish = final.choices[0].finish_reason;
  } else {
    const stream = await client.chat.completions.create({ ...options.request, stream: true });
    for await (const chunk of stream) {
      result.chunks += 1;
      if (chunk.usage) result.usage = chunk.usage;
      const choice = chunk.choices[0];
      if (choice?.delta?.content) result.text += choice.delta.content;
      if (choice?.finish_reason) result.finish = choice.finish_reason;
    }
  }
} catch (e) {
  result.error = { name: e?.constructor?.name ?? "Error", status: e?.status ?? null,
                   message: String(e?.message ?? e) };
}
console.log(JSON.stringify(result));
