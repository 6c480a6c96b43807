// The AI SDK's own client side of useChat, driven from the Python tests:
// DefaultChatTransport sends and resumes, readUIMessageStream assembles the message.
// Usage: node ui_client.mjs '<json options>'; prints one JSON line:
// {"message": <the last UIMessage snapshot or null>, "error": <message or null>, "status": ...}
import { DefaultChatTransport, readUIMessageStream } from "ai";

const options = JSON.parse(process.argv[2]);

function transport() {
  if (options.mode === "stream") {  // POST /v1/stream with "format": "ai-sdk"
    return new DefaultChatTransport({
      api: `${options.base}/v1/stream`,
      prepareSendMessagesRequest: () => ({ body: options.streamBody }),
    });
  }
  return new DefaultChatTransport({ api: `${options.base}/v1/chat`, body: options.body });
}

async function open(chat) {
  if (options.mode === "resume") {
    return chat.reconnectToStream({ chatId: options.chatId });
  }
  return chat.sendMessages({
    chatId: options.chatId ?? "chat-1", messages: options.messages,
    trigger: "submit-message", messageId: undefined, abortSignal: undefined,
  });
}

let message = null;
let error = null;
try {
  const stream = await open(transport());
  if (stream === null) {
    console.log(JSON.stringify({ message: null, error: null, status: 204 }));
    process.exit(0);
  }
  const messages = readUIMessageStream({
    stream, terminateOnError: true, onError: (e) => { error = String(e?.message ?? e); },
  });
  for await (const snapshot of messages) {
    message = snapshot;
  }
} catch (e) {
  error = String(e?.message ?? e);
}
console.log(JSON.stringify({ message, error, status: 200 }));
