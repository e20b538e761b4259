// Preloaded with `node -r` so that emulators without a bind-address flag
// (kinesis-local, kinesalite) listen on 127.0.0.1 only. It rewrites the host
// argument of net.Server.prototype.listen without touching package files.
'use strict';
const net = require('net');

const HOST = '127.0.0.1';
const listen = net.Server.prototype.listen;

net.Server.prototype.listen = function (...args) {
  const first = args[0];
  if (first !== null && typeof first === 'object' && !Array.isArray(first)) {
    if (first.path === undefined) {
      args[0] = Object.assign({}, first, { host: HOST });
    }
  } else if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) {
    if (typeof args[1] === 'string' || args[1] === undefined || args[1] === null) {
      args[1] = HOST;
    } else {
      args.splice(1, 0, HOST);
    }
  }
  return listen.apply(this, args);
};
