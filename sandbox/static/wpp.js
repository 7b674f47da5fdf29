/*
 * The sandbox's window.WPP: the part of the @wppconnect/wa-js 4.6.0 surface the sidecar
 * uses, with the same names, argument shapes, return shapes and event payloads, backed by
 * the sandbox server (under /net) instead of WhatsApp's servers.
 *
 * Only names that wa-js declares are put on the WPP object and its namespaces (a contract
 * test checks this); every helper stays inside this closure.
 *
 * The device identity lives in the profile's IndexedDB, so a persistent browser profile
 * comes back logged in without a QR, as on the real site (which keeps its keys there too).
 * Not localStorage: Chromium commits that about 5 s late, so a kill -9 soon after a login
 * would lose it.
 */
(function () {
  'use strict';

  var VERSION = '4.6.0';
  var SUPPORTED_WHATSAPP_WEB = '>=2.3000.1038792969-alpha';
  var DB_NAME = 'wa-sandbox'; // IndexedDB database with one key-value store
  var DB_STORE = 'kv';
  var KEY_DEVICE = 'device'; // {device_id, keys}: stable per browser profile
  var KEY_AUTH = 'auth'; // {token, phone}: present while linked
  var KEY_SEQ = 'seq'; // last server event handled, so a reload resumes after it
  var USER_CHAT = /^[0-9]{6,15}@c\.us$/;
  var GROUP_CHAT = /^[0-9]{6,20}(-[0-9]{1,20})?@g\.us$/;
  var MEDIA_TYPES = ['image', 'document', 'audio', 'video'];
  var MAIN_READY_WAIT_MS = 10000;

  // wa-js may have been injected by an init script before this page script runs; it cannot
  // work here, so this object replaces it, keeping any listeners already registered on it.
  var previous = window.WPP;

  // ---------------------------------------------------------------- errors and ids

  class WPPError extends Error {
    constructor(code, message, extra) {
      super(message);
      this.name = 'WPPError';
      this.code = code;
      if (extra) Object.assign(this, extra);
    }
  }

  class Wid {
    constructor(serialized) {
      var text = String(serialized);
      var at = text.indexOf('@');
      this.server = at < 0 ? 'c.us' : text.slice(at + 1);
      this.user = at < 0 ? text : text.slice(0, at);
      this._serialized = this.user + '@' + this.server;
    }
    toString() {
      return this._serialized;
    }
    // As on the real Wid, JSON.stringify gives the serialized string.
    toJSON() {
      return this._serialized;
    }
    equals(other) {
      return other != null && String(other._serialized || other) === this._serialized;
    }
    isGroup() {
      return this.server === 'g.us';
    }
    isUser() {
      return this.server === 'c.us';
    }
  }

  class MsgKey {
    constructor(fromMe, remote, id, participant) {
      this.fromMe = fromMe;
      this.remote = remote;
      this.id = id;
      if (participant) this.participant = participant;
      this._serialized =
        String(fromMe) + '_' + remote._serialized + '_' + id + (participant ? '_' + participant._serialized : '');
    }
    toString() {
      return this._serialized;
    }
  }

  function randomBytes(n) {
    var bytes = new Uint8Array(n);
    crypto.getRandomValues(bytes);
    return bytes;
  }

  function bytesToBase64(bytes) {
    var chunks = [];
    for (var i = 0; i < bytes.length; i += 0x8000) {
      chunks.push(String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000)));
    }
    return btoa(chunks.join(''));
  }

  function newKeys() {
    return {
      staticKeyPair: bytesToBase64(randomBytes(32)),
      identityKeyPair: bytesToBase64(randomBytes(32)),
      secretKey: bytesToBase64(randomBytes(32)),
    };
  }

  function newMessageId() {
    var hex = Array.from(randomBytes(8), function (b) {
      return b.toString(16).padStart(2, '0');
    }).join('');
    return '3EB0' + hex.toUpperCase();
  }

  function chatIdOf(chatId) {
    var text = chatId && typeof chatId === 'object' ? chatId._serialized : chatId;
    if (typeof text !== 'string' || !(USER_CHAT.test(text) || GROUP_CHAT.test(text))) {
      throw new WPPError('invalid_chat_id', 'chat id must look like <digits>@c.us or <id>@g.us', {
        id: String(text),
      });
    }
    return text;
  }

  function messageIdOf(value) {
    if (value && typeof value === 'object') return String(value._serialized || value.id);
    return String(value);
  }

  function sleep(ms) {
    return new Promise(function (resolve) {
      setTimeout(resolve, ms);
    });
  }

  // ---------------------------------------------------------------- emitter

  var listenersByEvent = new Map();
  var anyListeners = [];
  var api; // the WPP object, defined below; listeners are called with it as `this`

  function addListener(event, fn, once) {
    if (typeof fn !== 'function') throw new TypeError('listener must be a function');
    if (!listenersByEvent.has(event)) listenersByEvent.set(event, []);
    listenersByEvent.get(event).push({ fn: fn, once: once });
    return api;
  }

  function removeListener(event, fn) {
    var list = listenersByEvent.get(event);
    if (!list) return api;
    var index = list.findIndex(function (entry) {
      return entry.fn === fn;
    });
    if (index >= 0) list.splice(index, 1);
    if (list.length === 0) listenersByEvent.delete(event);
    return api;
  }

  function emit(event) {
    var args = Array.prototype.slice.call(arguments, 1);
    var list = (listenersByEvent.get(event) || []).slice();
    list.forEach(function (entry) {
      if (entry.once) removeListener(event, entry.fn);
      // One broken listener must not stop the page's own state machine.
      try {
        entry.fn.apply(api, args);
      } catch (err) {
        console.error('WPP listener for ' + event + ' failed', err);
      }
    });
    anyListeners.slice().forEach(function (fn) {
      try {
        fn.apply(api, [event].concat(args));
      } catch (err) {
        console.error('WPP any-listener failed', err);
      }
    });
    return list.length > 0 || anyListeners.length > 0;
  }

  function waitFor(event, option) {
    var timeout = typeof option === 'number' ? option : option && option.timeout;
    var filter = typeof option === 'function' ? option : option && option.filter;
    return new Promise(function (resolve, reject) {
      var timer = null;
      function listener() {
        var args = Array.prototype.slice.call(arguments);
        if (filter && !filter.apply(api, args)) return;
        removeListener(event, listener);
        if (timer) clearTimeout(timer);
        resolve(args);
      }
      addListener(event, listener, false);
      if (timeout) {
        timer = setTimeout(function () {
          removeListener(event, listener);
          reject(new Error('timeout'));
        }, timeout);
      }
    });
  }

  function adoptListeners(old) {
    if (!old || typeof old.eventNames !== 'function' || typeof old.listeners !== 'function') return;
    try {
      old.eventNames().forEach(function (name) {
        var event = Array.isArray(name) ? name.join('.') : String(name);
        old.listeners(name).forEach(function (fn) {
          addListener(event, fn, false);
        });
      });
    } catch (err) {
      console.warn('could not adopt listeners of the previous WPP', err);
    }
  }

  // ---------------------------------------------------------------- state

  var state = {
    deviceId: null,
    keys: null,
    auth: null, // {token, phone}
    config: { qr_interval: 20, qr_max_rotations: 5, main_ready_delay: 0.3 },
    ready: false,
    authenticated: false,
    mainReady: false,
    online: true,
    mode: 'loading', // loading | qr | idle | code | authenticated
    authCode: null,
    pairingCode: null,
    rotations: 0,
    refPromise: null,
    qrTimer: null,
    mainTimer: null,
    // Bumped on every login state change; timers and replies of an older epoch are ignored.
    epoch: 0,
    source: null,
    saving: Promise.resolve(), // the last identity write, awaited before announcing it
    lastSeq: 0,
    backlog: [], // messages and acks that arrive before main_ready
  };
  var readyCallbacks = [];
  var resolveReady;
  var readyPromise = new Promise(function (resolve) {
    resolveReady = resolve;
  });

  // A tiny key-value store on IndexedDB. Identity writes use strict durability; if the
  // database cannot be opened the page still works, with an identity that dies with it.
  var dbPromise = null;

  function openDb() {
    if (!dbPromise) {
      dbPromise = new Promise(function (resolve, reject) {
        var request = indexedDB.open(DB_NAME, 1);
        request.onupgradeneeded = function () {
          request.result.createObjectStore(DB_STORE);
        };
        request.onsuccess = function () {
          resolve(request.result);
        };
        request.onerror = function () {
          reject(request.error);
        };
      });
    }
    return dbPromise;
  }

  async function storeGet(key) {
    try {
      var db = await openDb();
      return await new Promise(function (resolve, reject) {
        var request = db.transaction(DB_STORE, 'readonly').objectStore(DB_STORE).get(key);
        request.onsuccess = function () {
          resolve(request.result === undefined ? null : request.result);
        };
        request.onerror = function () {
          reject(request.error);
        };
      });
    } catch (err) {
      console.error('IndexedDB read failed', err);
      return null;
    }
  }

  /** Store `value` under `key` (null deletes); resolves once the transaction committed. */
  async function storeSet(key, value, strict) {
    try {
      var db = await openDb();
      await new Promise(function (resolve, reject) {
        var tx = db.transaction(DB_STORE, 'readwrite', { durability: strict ? 'strict' : 'relaxed' });
        if (value === null) tx.objectStore(DB_STORE).delete(key);
        else tx.objectStore(DB_STORE).put(value, key);
        tx.oncomplete = function () {
          resolve();
        };
        tx.onerror = tx.onabort = function () {
          reject(tx.error);
        };
      });
    } catch (err) {
      console.error('IndexedDB write failed', err);
    }
  }

  async function loadIdentity() {
    var device = await storeGet(KEY_DEVICE);
    if (device && typeof device.device_id === 'string' && device.keys) {
      state.deviceId = device.device_id;
      state.keys = device.keys;
    } else {
      state.keys = newKeys();
    }
    var auth = await storeGet(KEY_AUTH);
    state.auth = auth && auth.token && auth.phone ? auth : null;
    var seq = Number(await storeGet(KEY_SEQ));
    state.lastSeq = Number.isFinite(seq) && seq > 0 ? seq : 0;
  }

  function saveDevice() {
    return storeSet(KEY_DEVICE, { device_id: state.deviceId, keys: state.keys }, true);
  }

  function persistSeq() {
    // Never past a buffered event: a reload must get it again.
    var seq = state.backlog.length ? state.backlog[0].seq - 1 : state.lastSeq;
    storeSet(KEY_SEQ, seq, false);
  }

  function clearTimers() {
    if (state.qrTimer) clearTimeout(state.qrTimer);
    if (state.mainTimer) clearTimeout(state.mainTimer);
    state.qrTimer = null;
    state.mainTimer = null;
  }

  /**
   * Forget the link (the device id stays, the keys are new). Returns the new epoch; the
   * removal is durable once `state.saving` resolves.
   */
  function dropIdentity() {
    clearTimers();
    state.auth = null;
    state.keys = newKeys();
    state.saving = Promise.all([storeSet(KEY_AUTH, null, true), saveDevice()]);
    state.authenticated = false;
    state.mainReady = false;
    state.online = true;
    state.backlog = [];
    state.authCode = null;
    state.pairingCode = null;
    state.epoch += 1;
    persistSeq();
    return state.epoch;
  }

  // ---------------------------------------------------------------- network

  async function net(path, body) {
    var response = await fetch(path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
      cache: 'no-store',
    });
    return answerOf(response);
  }

  async function answerOf(response) {
    var data = null;
    try {
      data = await response.json();
    } catch (err) {
      data = null;
    }
    if (!response.ok) {
      var error = (data && data.error) || {};
      throw new WPPError(error.code || 'network_error', error.message || 'HTTP ' + response.status, {
        status: response.status,
      });
    }
    return data;
  }

  async function helloUntilAnswered() {
    for (;;) {
      try {
        return await net('/net/hello', {
          device_id: state.deviceId,
          token: state.auth && state.auth.token,
          keys: state.keys,
        });
      } catch (err) {
        await sleep(1000);
      }
    }
  }

  function openStream() {
    if (state.source) state.source.close();
    var url =
      '/net/events?device=' + encodeURIComponent(state.deviceId) + '&since=' + String(state.lastSeq);
    var source = new EventSource(url);
    state.source = source;
    source.onmessage = function (event) {
      if (state.source === source) handleFrame(event);
    };
    source.onerror = function () {
      // CONNECTING means EventSource retries by itself; CLOSED means the server refused
      // the device (it restarted and forgot it): start over as a fresh page load would.
      if (source.readyState === EventSource.CLOSED && state.source === source) {
        state.source = null;
        setTimeout(rehello, 1000);
      }
    };
  }

  async function rehello() {
    if (state.source) return;
    applyHello(await helloUntilAnswered());
  }

  function handleFrame(event) {
    var frame;
    try {
      frame = JSON.parse(event.data);
    } catch (err) {
      return;
    }
    var seq = Number(event.lastEventId) || 0;
    if (seq && seq <= state.lastSeq) return; // already handled before a reconnect
    if (seq) state.lastSeq = seq;
    var data = frame.data || {};
    switch (frame.kind) {
      case 'linked':
        onLinked(data);
        break;
      case 'logout':
        onServerLogout();
        break;
      case 'disconnect':
        setOnline(false);
        break;
      case 'reconnect':
        setOnline(true);
        break;
      case 'message':
      case 'ack':
        if (!state.authenticated) break;
        if (state.mainReady) deliver(frame.kind, data);
        else state.backlog.push({ kind: frame.kind, data: data, seq: seq });
        break;
      default:
        break;
    }
    persistSeq();
  }

  // ---------------------------------------------------------------- login state machine

  async function boot() {
    await loadIdentity();
    // Like the real site: stored credentials count as logged in until the server disagrees.
    state.authenticated = !!state.auth;
    applyHello(await helloUntilAnswered());
  }

  async function applyHello(answer) {
    clearTimers();
    state.epoch += 1;
    var epoch = state.epoch;
    state.deviceId = answer.device_id;
    state.saving = saveDevice();
    if (answer.config) state.config = answer.config;
    if (answer.status === 'authenticated' && state.auth) {
      if (state.lastSeq > answer.event_seq) state.lastSeq = answer.event_seq;
      if (answer.phone) state.auth.phone = answer.phone;
      var wasOnline = state.online;
      state.authenticated = true;
      state.mode = 'authenticated';
      state.online = answer.online !== false;
      openStream();
      markReady();
      if (wasOnline && !state.online) emit('conn.online', false);
      if (!state.mainReady) scheduleMainReady(epoch);
      return;
    }
    // Unlinked, or the server no longer knows our token: start a QR flow from its log head.
    var hadIdentity = !!state.auth;
    state.lastSeq = answer.event_seq;
    if (hadIdentity) epoch = dropIdentity();
    persistSeq();
    await state.saving;
    if (epoch !== state.epoch) return;
    openStream();
    markReady();
    if (hadIdentity) emit('conn.logout');
    startQr(epoch, true);
  }

  function markReady() {
    render();
    if (state.ready) return;
    state.ready = true;
    resolveReady();
    var callbacks = readyCallbacks;
    readyCallbacks = [];
    // Run now, not in a later task: whatever attaches listeners here must hear the events
    // emitted right after readiness (conn.logout, conn.require_auth, conn.online).
    callbacks.forEach(function (entry) {
      if (entry.delay) runReadyCallback(entry);
      else callReadyCallback(entry.fn);
    });
  }

  function callReadyCallback(fn) {
    try {
      fn();
    } catch (err) {
      console.error('WPP ready callback failed', err);
    }
  }

  function runReadyCallback(entry) {
    setTimeout(function () {
      callReadyCallback(entry.fn);
    }, entry.delay || 0);
  }

  function onReadyCallback(fn, delay) {
    var entry = { fn: fn, delay: delay };
    if (state.ready) runReadyCallback(entry);
    else readyCallbacks.push(entry);
  }

  function startQr(epoch, announce) {
    state.mode = 'qr';
    state.rotations = 0;
    state.authCode = null;
    state.pairingCode = null;
    render();
    if (announce) emit('conn.require_auth');
    state.refPromise = rotate(epoch);
    return state.refPromise;
  }

  async function rotate(epoch) {
    if (epoch !== state.epoch) return;
    if (state.rotations >= state.config.qr_max_rotations) {
      await goIdle(epoch);
      return;
    }
    var answer;
    try {
      answer = await net('/net/qr', { device_id: state.deviceId, keys: state.keys });
    } catch (err) {
      if (epoch === state.epoch) {
        state.qrTimer = setTimeout(function () {
          rotate(epoch);
        }, 1000);
      }
      return;
    }
    if (epoch !== state.epoch) return;
    state.rotations += 1;
    state.authCode = authCodeFor(answer.ref);
    render();
    emit('conn.auth_code_change', state.authCode);
    state.qrTimer = setTimeout(function () {
      rotate(epoch);
    }, state.config.qr_interval * 1000);
  }

  async function goIdle(epoch) {
    state.mode = 'idle';
    state.authCode = null;
    render();
    // The server must know before anyone hears of it, so a scan of the old ref fails.
    try {
      await net('/net/qr/idle', { device_id: state.deviceId });
    } catch (err) {
      // the ref also expires by time on the server
    }
    if (epoch === state.epoch) emit('conn.qrcode_idle');
  }

  function authCodeFor(ref) {
    var keys = state.keys;
    return {
      type: 'multidevice',
      ref: ref,
      staticKeyPair: keys.staticKeyPair,
      identityKeyPair: keys.identityKeyPair,
      secretKey: keys.secretKey,
      fullCode: [ref, keys.staticKeyPair, keys.identityKeyPair, keys.secretKey].join(','),
    };
  }

  async function onLinked(data) {
    if (state.authenticated || !data.token || !data.phone) return;
    clearTimers();
    state.epoch += 1;
    var epoch = state.epoch;
    state.auth = { token: data.token, phone: data.phone };
    state.authenticated = true;
    state.mainReady = false;
    state.mode = 'authenticated';
    state.authCode = null;
    state.pairingCode = null;
    state.online = true;
    render();
    // "authenticated" promises that a restart comes back logged in: store first.
    state.saving = storeSet(KEY_AUTH, state.auth, true);
    await state.saving;
    if (epoch !== state.epoch) return;
    emit('conn.auth_code_change', null);
    emit('conn.authenticated');
    scheduleMainReady(epoch);
  }

  function scheduleMainReady(epoch) {
    state.mainTimer = setTimeout(function () {
      if (epoch !== state.epoch || !state.authenticated) return;
      state.mainReady = true;
      render();
      emit('conn.main_ready');
      var backlog = state.backlog;
      state.backlog = [];
      backlog.forEach(function (entry) {
        deliver(entry.kind, entry.data);
      });
      persistSeq();
    }, state.config.main_ready_delay * 1000);
  }

  async function onServerLogout() {
    if (!state.authenticated) return;
    var epoch = dropIdentity();
    render();
    await state.saving;
    if (epoch !== state.epoch) return;
    emit('conn.logout');
    startQr(epoch, true);
  }

  function setOnline(online) {
    if (state.online === online) return;
    state.online = online;
    render();
    emit('conn.online', online);
  }

  async function whenMainReady() {
    var deadline = Date.now() + MAIN_READY_WAIT_MS;
    while (!state.mainReady) {
      if (!state.authenticated) throw new WPPError('not_authenticated', 'not logged in');
      if (Date.now() > deadline) throw new WPPError('not_ready', 'main interface is not ready');
      await sleep(50);
    }
  }

  // ---------------------------------------------------------------- messages

  function deliver(kind, data) {
    if (kind === 'message') {
      emit('chat.new_message', inboundModel(data));
    } else if (kind === 'ack') {
      var chat = new Wid(data.chat);
      emit('chat.msg_ack_change', {
        ack: data.ack,
        ids: (data.ids || []).map(function (id) {
          return new MsgKey(true, chat, id);
        }),
        chat: chat,
      });
    }
  }

  function inboundModel(data) {
    var from = new Wid(data.from);
    var author = data.author ? new Wid(data.author) : null;
    var msg = {
      id: new MsgKey(false, from, data.id, author),
      from: from,
      to: new Wid(data.to),
      type: data.type,
      body: data.body || '',
      t: data.t,
      notifyName: data.notify_name || '',
      isNewMsg: true,
      ack: 1,
      isMedia: MEDIA_TYPES.indexOf(data.type) >= 0,
      isGroupMsg: from.isGroup(),
    };
    if (author) msg.author = author;
    if (msg.isMedia) {
      if (data.caption != null) msg.caption = data.caption;
      if (data.filename != null) msg.filename = data.filename;
      msg.mimetype = data.mimetype;
      msg.size = data.size;
    }
    if (data.type === 'location') {
      msg.lat = data.lat;
      msg.lng = data.lng;
      if (data.loc != null) msg.loc = data.loc;
      if (data.address != null) msg.address = data.address;
    }
    return msg;
  }

  function outgoingModel(key, phone, to, payload, t) {
    var me = new Wid(phone + '@c.us');
    var msg = {
      id: key,
      from: me,
      to: to,
      type: payload.type === 'text' ? 'chat' : payload.type,
      body: payload.type === 'text' ? payload.text : payload.caption || '',
      t: t,
      notifyName: '',
      isNewMsg: true,
      ack: 1,
      isMedia: MEDIA_TYPES.indexOf(payload.type) >= 0,
      isGroupMsg: to.isGroup(),
    };
    if (msg.isMedia) {
      if (payload.caption != null) msg.caption = payload.caption;
      if (payload.filename != null) msg.filename = payload.filename;
      msg.mimetype = payload.mimetype;
    }
    if (payload.type === 'location') {
      msg.lat = Number(payload.lat);
      msg.lng = Number(payload.lng);
      if (payload.name != null) msg.loc = payload.name;
    }
    return msg;
  }

  async function send(chatId, payload, options) {
    await readyPromise;
    if (!state.authenticated) throw new WPPError('not_authenticated', 'not logged in');
    var to = chatIdOf(chatId);
    await whenMainReady();
    if (!state.online) throw new WPPError('device_offline', 'the device is disconnected');
    // A logout may land while the request is in flight; keep what we sent with.
    var auth = state.auth;
    var body = Object.assign({ device_id: state.deviceId, token: auth.token, to: to }, payload);
    if (options && options.messageId) body.message_id = messageIdOf(options.messageId);
    var answer;
    try {
      answer = await net('/net/send', body);
    } catch (err) {
      // The network forgot this device (unlinked while we were away).
      if (err.status === 401) onServerLogout();
      throw err;
    }
    var chat = new Wid(to);
    var key = new MsgKey(true, chat, answer.id);
    // wa-js reports our own sends as new messages too (id.fromMe is true).
    emit('chat.new_message', outgoingModel(key, auth.phone, chat, payload, answer.t));
    return {
      id: key._serialized,
      ack: answer.ack,
      from: auth.phone + '@c.us',
      to: to,
      sendMsgResult: { messageSendResult: 'OK', t: answer.t },
    };
  }

  function parseDataUrl(url) {
    var match = /^data:([^;,]*)((?:;[^;,]*)*),([\s\S]*)$/.exec(url);
    if (!match) throw new WPPError('invalid_media', 'content is not a data URL');
    var params = match[2].split(';');
    var isBase64 = params.indexOf('base64') >= 0;
    var data = isBase64
      ? match[3].replace(/\s+/g, '')
      : bytesToBase64(new TextEncoder().encode(decodeURIComponent(match[3])));
    return { mimetype: match[1] || null, data: data };
  }

  function blobToDataUrl(blob) {
    return new Promise(function (resolve, reject) {
      var reader = new FileReader();
      reader.onload = function () {
        resolve(reader.result);
      };
      reader.onerror = function () {
        reject(reader.error);
      };
      reader.readAsDataURL(blob);
    });
  }

  async function mediaOf(content, options) {
    if (typeof Blob !== 'undefined' && content instanceof Blob) {
      var parsed = parseDataUrl(await blobToDataUrl(content));
      return {
        mimetype: content.type || parsed.mimetype,
        data: parsed.data,
        filename: content.name || null,
      };
    }
    if (typeof content !== 'string' || !content) {
      throw new WPPError('invalid_media', 'content must be a data URL, a URL or a Blob');
    }
    if (content.startsWith('data:')) return Object.assign({ filename: null }, parseDataUrl(content));
    if (/^(https?:)?\//.test(content)) {
      var response = await fetch(content);
      if (!response.ok) throw new WPPError('invalid_media', 'could not fetch ' + content);
      return mediaOf(await response.blob(), options);
    }
    // Bare base64 needs the mimetype from the options.
    return { mimetype: options.mimetype || null, data: content.replace(/\s+/g, ''), filename: null };
  }

  function mediaKind(mimetype) {
    var major = String(mimetype).split('/')[0];
    return MEDIA_TYPES.indexOf(major) >= 0 && major !== 'document' ? major : 'document';
  }

  async function sendFileMessage(chatId, content, options) {
    var opts = options || {};
    var media = await mediaOf(content, opts);
    var mimetype = opts.mimetype || media.mimetype || 'application/octet-stream';
    var type = !opts.type || opts.type === 'auto-detect' ? mediaKind(mimetype) : opts.type;
    if (MEDIA_TYPES.indexOf(type) < 0) {
      throw new WPPError('unsupported_type', 'the sandbox sends image, document, audio or video');
    }
    var payload = { type: type, data: media.data, mimetype: mimetype };
    if (opts.caption != null) payload.caption = String(opts.caption);
    var filename = opts.filename || media.filename;
    if (filename) payload.filename = String(filename);
    return send(chatId, payload, opts);
  }

  async function sendTextMessage(chatId, content, options) {
    return send(chatId, { type: 'text', text: content == null ? '' : String(content) }, options);
  }

  async function sendLocationMessage(chatId, options) {
    var opts = options || {};
    var payload = { type: 'location', lat: opts.lat, lng: opts.lng };
    if (opts.name != null) payload.name = String(opts.name);
    if (opts.address != null) payload.address = String(opts.address);
    return send(chatId, payload, opts);
  }

  async function downloadMedia(id) {
    await readyPromise;
    if (!state.authenticated) throw new WPPError('not_authenticated', 'not logged in');
    var url =
      '/net/media?device=' +
      encodeURIComponent(state.deviceId) +
      '&token=' +
      encodeURIComponent(state.auth.token) +
      '&id=' +
      encodeURIComponent(messageIdOf(id));
    var response = await fetch(url, { cache: 'no-store' });
    if (!response.ok) await answerOf(response); // throws the server's error
    return response.blob();
  }

  async function generateMessageID(chat) {
    return new MsgKey(true, new Wid(chatIdOf(chat)), newMessageId());
  }

  // ---------------------------------------------------------------- conn

  async function getAuthCode() {
    await readyPromise;
    if (state.mode === 'qr' && !state.authCode && state.refPromise) await state.refPromise;
    return state.mode === 'qr' ? state.authCode : null;
  }

  async function refreshQR() {
    await readyPromise;
    if (state.authenticated) return null;
    clearTimers();
    state.epoch += 1;
    await startQr(state.epoch, false);
    return state.authCode;
  }

  async function genLinkDeviceCodeForPhoneNumber(phone, sendPushNotification) {
    await readyPromise;
    if (state.authenticated) throw new WPPError('already_authenticated', 'already logged in');
    var answer = await net('/net/pairing', { device_id: state.deviceId, phone: String(phone) });
    // The page now shows the code instead of a rotating QR.
    clearTimers();
    state.epoch += 1;
    state.mode = 'code';
    state.authCode = null;
    state.pairingCode = answer.code;
    render();
    return answer.code;
  }

  async function logout() {
    await readyPromise;
    if (!state.authenticated) return false;
    try {
      await net('/net/logout', { device_id: state.deviceId, token: state.auth.token });
    } catch (err) {
      if (err.status !== 401) throw err; // 401: the network had already forgotten us
    }
    if (!state.authenticated) return true; // a logout pushed by the server got here first
    var epoch = dropIdentity();
    render();
    await state.saving;
    if (epoch === state.epoch) {
      emit('conn.logout');
      startQr(epoch, true);
    }
    return true;
  }

  function myWid() {
    return state.authenticated && state.auth ? new Wid(state.auth.phone + '@c.us') : undefined;
  }

  // ---------------------------------------------------------------- util

  function blobToBase64(blob) {
    return blobToDataUrl(blob);
  }

  function createWid(id) {
    if (!id) return undefined;
    var text = typeof id === 'object' ? id._serialized : String(id);
    if (!text) return undefined;
    return new Wid(text.indexOf('@') < 0 ? text + '@c.us' : text);
  }

  // ---------------------------------------------------------------- the WPP object

  function flag(target, name, read) {
    Object.defineProperty(target, name, { get: read, enumerable: true });
  }

  var loader = {
    onInjected: function (fn, delay) {
      setTimeout(fn, delay || 0);
    },
    onReady: onReadyCallback,
    onFullReady: onReadyCallback,
  };
  flag(loader, 'isInjected', function () {
    return true;
  });
  flag(loader, 'isReady', function () {
    return state.ready;
  });
  flag(loader, 'isFullReady', function () {
    return state.ready;
  });

  api = {
    version: VERSION,
    supportedWhatsappWeb: SUPPORTED_WHATSAPP_WEB,
    license: 'Apache-2.0',
    loader: loader,
    conn: {
      getAuthCode: getAuthCode,
      refreshQR: refreshQR,
      genLinkDeviceCodeForPhoneNumber: genLinkDeviceCodeForPhoneNumber,
      logout: logout,
      isAuthenticated: function () {
        return state.authenticated;
      },
      isRegistered: function () {
        return state.authenticated;
      },
      isMainInit: function () {
        return state.authenticated;
      },
      isMainLoaded: function () {
        return state.mainReady;
      },
      isMainReady: function () {
        return state.mainReady;
      },
      isOnline: function () {
        return state.online;
      },
      isIdle: function () {
        return state.mode === 'idle';
      },
      isMultiDevice: function () {
        return true;
      },
      needsUpdate: function () {
        return false;
      },
      getMyUserId: myWid,
      getMyUserWid: myWid,
    },
    chat: {
      sendTextMessage: sendTextMessage,
      sendFileMessage: sendFileMessage,
      sendLocationMessage: sendLocationMessage,
      downloadMedia: downloadMedia,
      generateMessageID: generateMessageID,
    },
    util: {
      WPPError: WPPError,
      blobToBase64: blobToBase64,
      createWid: createWid,
    },
    on: function (event, fn) {
      return addListener(event, fn, false);
    },
    once: function (event, fn) {
      return addListener(event, fn, true);
    },
    off: removeListener,
    removeListener: removeListener,
    removeAllListeners: function (event) {
      if (event === undefined) listenersByEvent.clear();
      else listenersByEvent.delete(event);
      return api;
    },
    emit: emit,
    onAny: function (fn) {
      anyListeners.push(fn);
      return api;
    },
    offAny: function (fn) {
      anyListeners = anyListeners.filter(function (other) {
        return other !== fn;
      });
      return api;
    },
    listeners: function (event) {
      return (listenersByEvent.get(event) || []).map(function (entry) {
        return entry.fn;
      });
    },
    listenerCount: function (event) {
      if (event === undefined) {
        var total = 0;
        listenersByEvent.forEach(function (list) {
          total += list.length;
        });
        return total;
      }
      return (listenersByEvent.get(event) || []).length;
    },
    eventNames: function () {
      return Array.from(listenersByEvent.keys());
    },
    waitFor: waitFor,
  };
  flag(api, 'isInjected', function () {
    return true;
  });
  flag(api, 'isReady', function () {
    return state.ready;
  });
  flag(api, 'isFullReady', function () {
    return state.ready;
  });

  adoptListeners(previous);
  try {
    window.WPP = api;
  } catch (err) {
    // fall through to defineProperty
  }
  if (window.WPP !== api) {
    Object.defineProperty(window, 'WPP', { value: api, configurable: true, writable: true });
  }

  // ---------------------------------------------------------------- a minimal UI for humans

  function render() {
    if (typeof document === 'undefined' || !document.getElementById) return;
    var status = document.getElementById('status');
    var code = document.getElementById('code');
    if (!status || !code) return;
    var text = {
      loading: 'Loading…',
      qr: 'Scan the QR code with the sandbox phone (POST /control/scan)',
      idle: 'QR code expired: call WPP.conn.refreshQR()',
      code: 'Enter the linking code on the phone (POST /control/pairing)',
      authenticated: state.mainReady ? 'Connected' : 'Loading chats…',
    }[state.mode];
    if (state.authenticated && state.auth) {
      text += ' as +' + state.auth.phone + (state.online ? '' : ' (offline)');
    }
    status.textContent = text;
    code.textContent =
      state.mode === 'qr' && state.authCode
        ? state.authCode.fullCode
        : state.mode === 'code'
          ? state.pairingCode || ''
          : '';
  }

  if (typeof document !== 'undefined') document.addEventListener('DOMContentLoaded', render);

  boot().catch(function (err) {
    console.error('sandbox WPP failed to start', err);
  });
})();
