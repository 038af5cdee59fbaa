// Cadenza's egress relay, inside a sandbox (run by the sandbox image's node, as root, so the agent's
// user cannot stop it). A loopback listener whose connections travel, framed, over this process's
// stdin and stdout (a Docker exec stream) to the worker, which applies the policy and connects out.
// Frames: type (1 byte: 1 open, 2 data, 3 close), connection id (4 bytes), length (4 bytes), payload.
'use strict';
const net = require('net');

const OPEN = 1;
const DATA = 2;
const CLOSE = 3;
const sockets = new Map();
let nextId = 1;

function send(type, id, payload) {
  const header = Buffer.alloc(9);
  header[0] = type;
  header.writeUInt32BE(id, 1);
  header.writeUInt32BE(payload ? payload.length : 0, 5);
  process.stdout.write(payload ? Buffer.concat([header, payload]) : header);
}

const server = net.createServer((socket) => {
  const id = nextId++;
  sockets.set(id, socket);
  send(OPEN, id);
  socket.on('data', (chunk) => send(DATA, id, chunk));
  socket.on('close', () => {
    if (sockets.delete(id)) send(CLOSE, id);
  });
  socket.on('error', () => undefined);
});
server.on('error', (error) => {
  process.stderr.write(`cadenza-relay-error ${error.message}\n`);
  process.exit(2);
});
server.listen(Number(process.argv[2]), '127.0.0.1', () => process.stderr.write('cadenza-relay-listening\n'));

let pending = Buffer.alloc(0);
process.stdin.on('data', (chunk) => {
  pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
  while (pending.length >= 9) {
    const length = pending.readUInt32BE(5);
    if (pending.length < 9 + length) break;
    const type = pending[0];
    const id = pending.readUInt32BE(1);
    const payload = pending.subarray(9, 9 + length);
    pending = pending.subarray(9 + length);
    const socket = sockets.get(id);
    if (!socket) continue;
    if (type === DATA) socket.write(payload);
    else if (type === CLOSE) {
      sockets.delete(id);
      socket.end();
    }
  }
});
process.stdin.on('end', () => process.exit(0));
