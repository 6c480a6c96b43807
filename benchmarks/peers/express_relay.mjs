// The Node/Express pattern: the relay most teams write first, with Express on the
// client side and Node's http client (a keep-alive agent) to the provider.
//
// It does the floor's job (POST /v1/stream -> OpenAI-format upstream ->
// `data: {"content": ...}` frames -> `data: [DONE]`): parse the JSON body, open the
// upstream stream, split its SSE lines, parse each chunk, write the frames of one
// upstream read as one write. No hardening, heartbeats or error handling.
//
//     node benchmarks/peers/express_relay.mjs PORT UPSTREAM_PORT
import http from "node:http";
import express from "express";

const [port, upstreamPort] = process.argv.slice(2).map(Number);
const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
const app = express();
app.use(express.json({ limit: "1mb" }));

app.post("/v1/stream", (req, res) => {
  const body = JSON.stringify({ model: req.body.model, messages: req.body.messages, stream: true });
  res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-cache" });
  const upstream = http.request({
    host: "127.0.0.1", port: upstreamPort, path: "/v1/chat/completions", method: "POST", agent,
    headers: { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) },
  }, (response) => {
    response.setEncoding("utf8");
    let buffer = "";
    response.on("data", (text) => {
      buffer += text;
      const lines = buffer.split("\n");
      buffer = lines.pop();
      let out = "";
      for (const line of lines) {
        if (!line.startsWith("data: {")) continue;
        const content = JSON.parse(line.slice(6)).choices?.[0]?.delta?.content;
        if (content) out += `data: ${JSON.stringify({ content })}\n\n`;
      }
      if (out) res.write(out);
    });
    response.on("end", () => res.end("data: [DONE]\n\n"));
  });
  upstream.on("error", () => res.end());
  upstream.end(body);
});

const server = app.listen(port, "127.0.0.1", () => {
  console.error(`listening on http://127.0.0.1:${server.address().port}`);
});
