// A Forward-protocol sender built on the real @fluent-org/logger, used by ferry's
// interoperability tests.
//
//   node node_sender.js PORT COUNT MODE [--ack] [--security HOST:KEY[:USER:PASSWORD]] [--tls-ca FILE]
//
// MODE is an event mode of the library: Message, Forward, PackedForward or
// CompressedPackedForward. Each event is {"seq": i, "client": "node", "mode": MODE} with an
// EventTime of 1700000000 + i seconds and i nanoseconds. With --ack every emit waits for the
// server's ack. Exits non-zero if any emit fails.
"use strict";
const fs = require("fs");
const { FluentClient, EventTime } = require("@fluent-org/logger");

const [port, count, mode, ...flags] = process.argv.slice(2);
const options = {
  eventMode: mode,
  socket: { host: "127.0.0.1", port: Number(port), timeout: 10000, disableReconnect: true },
  flushInterval: 0,
};
for (let i = 0; i < flags.length; i++) {
  if (flags[i] === "--ack") {
    options.ack = { ackTimeout: 10000 };
  } else if (flags[i] === "--security") {
    const [clientHostname, sharedKey, username, password] = flags[++i].split(":");
    options.security = { clientHostname, sharedKey, username, password };
  } else if (flags[i] === "--tls-ca") {
    options.socket.tls = { ca: fs.readFileSync(flags[++i]), servername: "localhost" };
  }
}

async function main() {
  const logger = new FluentClient("node", options);
  await logger.connect();
  const sent = [];
  for (let i = 0; i < Number(count); i++) {
    sent.push(logger.emit(mode, { seq: i, client: "node", mode }, new EventTime(1700000000 + i, i)));
  }
  await Promise.all(sent);
  await logger.disconnect();
  console.log(`sent ${count}`);
}

main().catch((e) => {
  console.error("node sender failed:", e);
  process.exit(1);
});
