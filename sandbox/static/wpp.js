/*
 * The sandbox's window.WPP: the part of the @wppconnect/wa-js 4.6.0 surface the sidecar
 * uses, with the same names, argument shapes, return shapes, errors and event payloads,
 * backed by the sandbox server (under /net) instead of WhatsApp's servers.
 *
 * Only names that wa-js declares are put on the WPP object and its namespaces (a contract
 * test checks this); every helper stays inside this closure. Only WPPError codes that exist
 * in the wa-js bundle are thrown; anything else is a plain Error without a code.
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
  var KEY_AUTH = 'auth'; // {token, phone, lid}: present while linked
  var KEY_SEQ = 'seq'; // last server event handled, so a reload resumes after it
  // The chat ids the sandbox network routes; anything else is an invalid WID here.
  var USER_CHAT = /^[0-9]{6,15}@c\.us$/;
  var GROUP_CHAT = /^[0-9]{6,20}(-[0-9]{1,20})?@g\.us$/;
  var LID_CHAT = /^[0-9]{1,20}@lid$/;
  // The `type` options of sendFileMessage, and the media message types (a voice note is `ptt`).
  var FILE_TYPES = ['image', 'document', 'audio', 'video', 'sticker'];
  var MEDIA_TYPES = FILE_TYPES.concat(['ptt']);
  // wa-js's isBase64 (util/isBase64).
  var BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
  // How long an inbound `ciphertext` message takes to "decrypt" (WhatsApp: until the keys
  // arrive; any short delay shows the double emission).
  var DECRYPT_MS = 100;
  // The page's in-memory message store (WhatsApp's MsgStore) keeps at most this many.
  var MESSAGES_LIMIT = 20000;

  // wa-js may have been injected by an init script before this page script runs; it cannot
  // work here, so this object replaces it, keeping any listeners already registered on it.
  var previous = window.WPP;

  // ---------------------------------------------------------------- errors and ids

  // As wa-js's: `code` and the `extra` keys are own properties, `name` stays "Error".
  class WPPError extends Error {
    constructor(code, message, extra) {
      super(message);
      this.code = code;
      if (extra) {
        Object.keys(extra).forEach(function (key) {
          this[key] = extra[key];
        }, this);
      }
    }
  }

  /** A plain Error (no `code`), with the network's answer kept out of sight. */
  function netError(message, status, netCode) {
    var err = new Error(message);
    Object.defineProperty(err, 'status', { value: status });
    Object.defineProperty(err, 'netCode', { value: netCode });
    return err;
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
      return this.server === 'c.us' || this.server === 'lid';
    }
    isLid() {
      return this.server === 'lid';
    }
    isBroadcast() {
      return this.server === 'broadcast';
    }
    isStatus() {
      return this._serialized === 'status@broadcast';
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
    /** `true_<remote>_<id>[_<participant>]`, or null when `text` is not a key. */
    static fromString(text) {
      var match = /^(true|false)_([^_@]+@[^_]+)_([^_]+)(?:_([^_@]+@[^_]+))?$/.exec(String(text));
      if (!match) return null;
      return new MsgKey(match[1] === 'true', new Wid(match[2]), match[3], match[4] ? new Wid(match[4]) : null);
    }
  }

  /** A MsgKey from a key, a serialized key or a message; null when it is none of them. */
  function keyOf(value) {
    if (value && typeof value === 'object') {
      if (typeof value._serialized === 'string') return MsgKey.fromString(value._serialized);
      if (value.id && typeof value.id === 'object') return keyOf(value.id); // a MsgModel
      return null;
    }
    return typeof value === 'string' ? MsgKey.fromString(value) : null;
  }

  class ChatModel {
    constructor(id) {
      this.id = id;
      this.t = undefined;
      this.unreadCount = 0;
      this.archive = false;
      this.lastReceivedKey = undefined;
    }
    get isUser() {
      return this.id.isUser();
    }
    get isGroup() {
      return this.id.isGroup();
    }
    get hasUnread() {
      return this.unreadCount !== 0;
    }
  }

  // wa-js's MsgModel: persisted props are own properties, toJSON/serialize return them.
  class MsgModel {
    constructor(props) {
      Object.assign(this, props);
    }
    toJSON() {
      return Object.assign({}, this);
    }
    serialize() {
      return this.toJSON();
    }
  }
  // wa-js defines this getter on MsgModel.prototype; it throws on a message that is not a
  // reply (chat.getQuotedMsgKey).
  Object.defineProperty(MsgModel.prototype, 'quotedMsgId', {
    get: function () {
      return quotedMsgKey(this);
    },
    configurable: true,
  });

  function quotedMsgKey(msg) {
    if (!msg.quotedStanzaID) {
      throw new WPPError('message_not_have_a_reply', 'Message ' + msg.id + ' does not have a reply', {
        id: msg.id,
      });
    }
    var remote = msg.quotedRemoteJid ? msg.quotedRemoteJid : msg.id.remote;
    var me = myWid();
    var fromMe = (me && me.equals(msg.quotedParticipant)) || false;
    var inGroup = isGroupWid(msg.from) || isGroupWid(msg.to) || new Wid(remote).isStatus();
    return new MsgKey(fromMe, remote, msg.quotedStanzaID, inGroup ? msg.quotedParticipant : null);
  }

  function isGroupWid(wid) {
    return !!wid && String(wid._serialized || wid).endsWith('@g.us');
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

  // wa-js's createWid: a Wid-like object, then `@lid`, bare digits (c.us), `<d>-<d>`
  // (g.us), `...status` (broadcast), else WhatsApp's parser (here: `user@server`).
  function createWid(id) {
    if (!id) return undefined;
    var text = typeof id === 'object' ? id._serialized : id;
    if (typeof text !== 'string') return undefined;
    var user = text.split('@')[0];
    if (/@\w*lid\b/.test(text)) return new Wid(user + '@lid');
    if (/^\d+$/.test(text)) return new Wid(text + '@c.us');
    if (/^\d+-\d+$/.test(text)) return new Wid(text + '@g.us');
    if (/status$/.test(text)) return new Wid(user + '@broadcast');
    var at = text.indexOf('@');
    if (at <= 0 || at === text.length - 1) return undefined;
    return new Wid(text);
  }

  // wa-js's assertWid.
  function assertWid(id) {
    var wid = createWid(id);
    if (!wid) throw new WPPError('invalid_wid', 'Invalid WID value for ' + id, { id: id });
    return wid;
  }

  /** A chat id the sandbox can route (user, LID or group), as a Wid; else `invalid_wid`. */
  function chatWid(id) {
    var wid = assertWid(id);
    var text = wid._serialized;
    if (!(USER_CHAT.test(text) || GROUP_CHAT.test(text) || LID_CHAT.test(text))) {
      throw new WPPError('invalid_wid', 'Invalid WID value for ' + id, { id: id });
    }
    return wid;
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
    auth: null, // {token, phone, lid}
    config: { qr_interval: 20, qr_max_rotations: 5, main_ready_delay: 0.3 },
    ready: false,
    authenticated: false,
    online: true,
    // WhatsApp's Stream: StreamMode and StreamInfo strings, as getStreamData() reports them.
    streamMode: undefined,
    streamInfo: undefined,
    mainReadyFired: false, // wa-js's isMainReady latch: set once per page load
    mainLoaded: false, // MAIN was reached (Cmd.isMainLoaded)
    screen: 'loading', // loading | qr | idle | code | authenticated: what the UI shows
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
    backlog: [], // messages and acks that arrive before the mode is MAIN
    waiters: [], // sends waiting for MAIN, woken on every stream or login change
    outbox: Promise.resolve(), // sends reach the network one after the other, in order
  };
  // The page's own stores (WhatsApp's MsgStore, ChatStore, ContactStore, lidPnCache).
  var messages = new Map(); // serialized MsgKey -> MsgModel
  var ownMessages = new Map(); // bare id -> our own MsgModel, for receipts
  var chats = new Map(); // serialized Wid -> ChatModel
  var contacts = new Map(); // serialized Wid -> {pushname}
  var lidToPn = new Map(); // '<lid>@lid' -> Wid(@c.us)
  var pnToLid = new Map(); // '<phone>@c.us' -> Wid(@lid)
  var blockedIds = new Set(); // serialized Wids this account blocked (WhatsApp's BlocklistStore)
  // wa-js's queryWidExists promise cache: '+<wid>' -> Promise, 5 min for a hit, 15 s for null.
  var existsCache = new Map();
  var EXISTS_TTL_MS = 300000;
  var MISSING_TTL_MS = 15000;
  var readyCallbacks = []; // loader.onReady callbacks, run at readiness
  var fullReadyCallbacks = []; // loader.onFullReady callbacks, run after conn.main_ready
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

  function forgetMessages() {
    messages.clear();
    ownMessages.clear();
    chats.clear();
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
    state.online = true;
    state.backlog = [];
    state.authCode = null;
    state.pairingCode = null;
    state.epoch += 1;
    forgetMessages();
    persistSeq();
    wakeWaiters();
    return state.epoch;
  }

  // ---------------------------------------------------------------- network

  async function net(path, body) {
    var response;
    try {
      response = await fetch(path, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
        cache: 'no-store',
      });
    } catch (err) {
      throw netError('the sandbox network is unreachable: ' + err.message, 0, null);
    }
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
      throw netError(error.message || 'HTTP ' + response.status, response.status, error.code || null);
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
      case 'caught_up':
        // What waited for us while we were away has been handed over.
        if (state.online && state.authenticated) setStream(state.streamMode, infoFor(state.streamMode));
        break;
      case 'presence':
        if (state.authenticated && state.streamMode === 'MAIN') onPresence(data);
        break;
      case 'call':
        if (state.authenticated) onIncomingCall(data);
        break;
      case 'poll_vote':
        if (state.authenticated) onPollVote(data);
        break;
      case 'message':
      case 'ack':
      case 'group':
      case 'reaction':
      case 'edit':
      case 'revoke':
        if (!state.authenticated) break;
        if (state.streamMode === 'MAIN') deliver(frame.kind, data);
        else state.backlog.push({ kind: frame.kind, data: data, seq: seq });
        break;
      default:
        break;
    }
    persistSeq();
  }

  // ---------------------------------------------------------------- the stream

  // The StreamInfo that goes with a mode while the connection is fine.
  function infoFor(mode) {
    return { QR: 'PAIRING', SYNCING: 'SYNCING', MAIN: 'NORMAL' }[mode];
  }

  /**
   * Move WhatsApp's Stream. Before readiness nothing is emitted: wa-js announces the current
   * values when it is injected (markReady does that here).
   */
  function setStream(mode, info) {
    var modeChanged = mode !== state.streamMode;
    var infoChanged = info !== state.streamInfo;
    state.streamMode = mode;
    state.streamInfo = info;
    if (mode === 'MAIN') state.mainLoaded = true;
    if (state.ready) {
      if (modeChanged) announceMode();
      if (infoChanged) emit('conn.stream_info_changed', info);
    }
    wakeWaiters();
  }

  function announceMode() {
    emit('conn.stream_mode_changed', state.streamMode);
    // wa-js: conn.main_ready once per load, the first time the mode is MAIN or QR.
    if (!state.mainReadyFired && (state.streamMode === 'MAIN' || state.streamMode === 'QR')) {
      state.mainReadyFired = true;
      emit('conn.main_ready');
      // wa-js's loader is "full ready" once conn.main_ready fired.
      var callbacks = fullReadyCallbacks;
      fullReadyCallbacks = [];
      callbacks.forEach(runReadyCallback);
    }
  }

  function wakeWaiters() {
    var waiters = state.waiters;
    state.waiters = [];
    waiters.forEach(function (wake) {
      wake();
    });
  }

  /** Resolves once logged in with the mode MAIN; a plain Error if logged out first. */
  async function whenMain() {
    for (;;) {
      if (!state.authenticated) throw new Error('not logged in');
      if (state.streamMode === 'MAIN') return;
      await new Promise(function (resolve) {
        state.waiters.push(resolve);
      });
    }
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
      if (answer.lid) state.auth.lid = answer.lid;
      learnOwnLid();
      blockedIds = new Set(answer.blocked || []);
      var wasOnline = state.online;
      state.authenticated = true;
      state.screen = 'authenticated';
      state.online = answer.online !== false;
      // A restored session opens its stream and syncs before MAIN.
      if (state.streamMode !== 'MAIN') setStream('SYNCING', state.online ? 'OPENING' : 'OFFLINE');
      openStream();
      markReady();
      if (wasOnline && !state.online) emit('conn.online', false);
      if (state.streamMode !== 'MAIN') scheduleMain(epoch);
      return;
    }
    // Unlinked, or the server no longer knows our token: start a QR flow from its log head.
    var hadIdentity = !!state.auth;
    state.lastSeq = answer.event_seq;
    if (hadIdentity) {
      // The page had credentials, so it started as a restored session would.
      if (!state.ready) setStream('SYNCING', 'OPENING');
      epoch = dropIdentity();
    } else if (!state.ready) {
      setStream('QR', 'PAIRING');
    }
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
    // emitted right after readiness (the stream, conn.logout, conn.require_auth, ...).
    callbacks.forEach(function (entry) {
      if (entry.delay) runReadyCallback(entry);
      else callReadyCallback(entry.fn);
    });
    // As wa-js at injection: the current stream mode and info.
    if (state.streamMode) announceMode();
    if (state.streamInfo) emit('conn.stream_info_changed', state.streamInfo);
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

  // As wa-js's loader.onReady/onFullReady, these only subscribe: registered after the
  // moment, they never run.
  function onReadyCallback(fn, delay) {
    if (!state.ready) readyCallbacks.push({ fn: fn, delay: delay });
  }

  function onFullReadyCallback(fn, delay) {
    if (!state.mainReadyFired) fullReadyCallbacks.push({ fn: fn, delay: delay });
  }

  function startQr(epoch, announce) {
    state.screen = 'qr';
    state.rotations = 0;
    state.authCode = null;
    state.pairingCode = null;
    setStream('QR', 'PAIRING');
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
    state.screen = 'idle';
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
    state.auth = { token: data.token, phone: data.phone, lid: data.lid || null };
    state.authenticated = true;
    state.screen = 'authenticated';
    state.authCode = null;
    state.pairingCode = null;
    state.online = true;
    learnOwnLid();
    render();
    // "authenticated" promises that a restart comes back logged in: store first.
    state.saving = storeSet(KEY_AUTH, state.auth, true);
    await state.saving;
    if (epoch !== state.epoch) return;
    emit('conn.auth_code_change', null);
    emit('conn.authenticated');
    setStream('SYNCING', 'SYNCING');
    scheduleMain(epoch);
  }

  function scheduleMain(epoch) {
    state.mainTimer = setTimeout(function () {
      if (epoch !== state.epoch || !state.authenticated) return;
      setStream('MAIN', state.online ? 'NORMAL' : 'OFFLINE');
      render();
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
    // The mode stays; the info says the socket is gone, then that it is coming back
    // (NORMAL again once the network has handed over what waited: 'caught_up').
    setStream(state.streamMode, online ? 'CONNECTING' : 'OFFLINE');
  }

  // ---------------------------------------------------------------- stores

  function learnPair(lid, pn) {
    var lidWid = new Wid(lid);
    var pnWid = new Wid(pn);
    lidToPn.set(lidWid._serialized, pnWid);
    pnToLid.set(pnWid._serialized, lidWid);
  }

  function learnOwnLid() {
    if (state.auth && state.auth.lid) learnPair(state.auth.lid, state.auth.phone + '@c.us');
  }

  /** Put a message in the store; false if one with its key is there already. */
  function remember(msg) {
    var key = msg.id._serialized;
    if (messages.has(key)) return false;
    messages.set(key, msg);
    if (msg.id.fromMe) ownMessages.set(msg.id.id, msg);
    if (messages.size > MESSAGES_LIMIT) {
      var oldest = messages.keys().next().value;
      var dropped = messages.get(oldest);
      messages.delete(oldest);
      if (ownMessages.get(dropped.id.id) === dropped) ownMessages.delete(dropped.id.id);
    }
    return true;
  }

  /**
   * What wa-js does on MsgStore "add" (isNewMsg): a reply whose quoted message is in the
   * store gets own `_quotedMsgObj`/`quotedMsgId`; then chat.new_message.
   */
  function addMessage(msg) {
    if (!remember(msg)) return false;
    touchChat(msg);
    if (msg.quotedStanzaID !== undefined) {
      var quoted = messages.get(quotedMsgKey(msg)._serialized) || ownMessages.get(msg.quotedStanzaID);
      if (quoted) {
        Object.defineProperties(msg, {
          _quotedMsgObj: { value: quoted, writable: false },
          quotedMsgId: { value: quoted.id, writable: false },
        });
      }
    }
    emit('chat.new_message', msg);
    return true;
  }

  // ---------------------------------------------------------------- messages

  function deliver(kind, data) {
    if (kind === 'message') {
      deliverMessage(data);
    } else if (kind === 'ack') {
      deliverReceipt(data);
    } else if (kind === 'group') {
      deliverGroupChange(data);
    } else if (kind === 'reaction') {
      deliverReaction(data);
    } else if (kind === 'edit') {
      deliverEdit(data);
    } else if (kind === 'revoke') {
      deliverRevoke(data);
    }
  }

  function deliverMessage(data) {
    (data.lid_pn || []).forEach(function (pair) {
      learnPair(pair.lid, pair.pn);
    });
    var msg = inboundModel(data);
    if (!data.from_me && !data.subtype) {
      var sender = msg.author || msg.from;
      var pn = sender.isLid() ? lidToPn.get(sender._serialized) : sender;
      [sender, pn].forEach(function (wid) {
        if (wid) contacts.set(wid._serialized, { pushname: data.notify_name || undefined });
      });
    }
    if (!data.ciphertext) {
      addMessage(msg);
      return;
    }
    // wa-js: a ciphertext message is emitted at once, then the SAME object again once
    // WhatsApp has decrypted it and changed its type.
    if (!addMessage(msg)) return;
    var epoch = state.epoch;
    setTimeout(function () {
      if (epoch !== state.epoch) return;
      applyContent(msg, data);
      queueMicrotask(function () {
        emit('chat.new_message', msg);
      });
    }, DECRYPT_MS);
  }

  function inboundModel(data) {
    var key = MsgKey.fromString(data.serialized);
    var msg = new MsgModel({
      id: key,
      from: new Wid(data.from),
      to: new Wid(data.to),
      t: data.t,
      notifyName: data.from_me ? '' : data.notify_name || '',
      isNewMsg: true,
      ack: 1,
    });
    if (data.author) msg.author = new Wid(data.author);
    msg.isGroupMsg = key.remote.isGroup();
    if (data.ciphertext) {
      msg.type = 'ciphertext';
      msg.isMedia = false;
    } else {
      applyContent(msg, data);
    }
    return msg;
  }

  /** The decrypted content of an inbound message: type, body, media, location, reply. */
  function applyContent(msg, data) {
    msg.type = data.type;
    if (data.subtype) msg.subtype = data.subtype;
    msg.body = data.body || '';
    msg.isMedia = MEDIA_TYPES.indexOf(data.type) >= 0;
    if (msg.isMedia) {
      if (data.caption != null) msg.caption = data.caption;
      if (data.filename != null) msg.filename = data.filename;
      msg.mimetype = data.mimetype;
      msg.size = data.size;
    }
    if (data.type === 'location') {
      msg.lat = data.lat;
      msg.lng = data.lng;
      msg.loc = locText(data.name, data.address);
    }
    if (data.mentioned && data.mentioned.length) {
      msg.mentionedJidList = data.mentioned.map(function (id) {
        return new Wid(id);
      });
    }
    if (data.quoted) {
      msg.quotedStanzaID = data.quoted.id;
      msg.quotedParticipant = new Wid(data.quoted.participant);
      msg.quotedRemoteJid = new Wid(data.quoted.remote);
    }
  }

  // wa-js's sendLocationMessage: "name\naddress", or whichever of the two there is.
  function locText(name, address) {
    return name && address ? name + '\n' + address : name || address || '';
  }

  // wa-js's receipt path: only acks of 2 and up, keys rebuilt on the receipt's chat.
  function deliverReceipt(data) {
    if (!(data.ack >= 2)) return;
    var chat = new Wid(data.chat);
    var ids = (data.ids || []).map(function (id) {
      var own = ownMessages.get(id);
      if (own && own.ack < data.ack) own.ack = data.ack;
      return new MsgKey(true, chat, id);
    });
    emit('chat.msg_ack_change', { ack: data.ack, chat: chat, sender: undefined, ids: ids });
  }

  /** A message's ack changes; wa-js's SENT path reports the change to 1. */
  function setAck(msg, ack) {
    if (msg.ack === ack) return;
    msg.ack = ack;
    if (ack === 1) emit('chat.msg_ack_change', { ack: 1, chat: msg.to, ids: [msg.id] });
  }

  // ---------------------------------------------------------------- message actions

  // wa-js's chat.new_reaction (wired at full_ready): reactionText '' when taken back;
  // `timestamp` in milliseconds; `id` is the reaction message's own key.
  function deliverReaction(data) {
    var remote = new Wid(data.remote);
    var sender = new Wid(data.sender);
    emit('chat.new_reaction', {
      id: new MsgKey(false, remote, data.reaction_id, remote.isGroup() ? sender : null),
      msgId: MsgKey.fromString(data.key),
      reactionText: data.reaction,
      read: false,
      sender: sender,
      orphan: 0,
      orphanReason: null,
      timestamp: data.t,
    });
  }

  // wa-js's sendReactionToMessage: falsy removes ours; a message WhatsApp Web cannot find
  // is msg_not_found.
  async function sendReactionToMessage(msgId, reaction) {
    await readyPromise;
    await whenMain();
    var auth = state.auth;
    var key = keyOf(msgId);
    var text = key ? key._serialized : String(msgId);
    if (!key) throw new WPPError('msg_not_found', 'Message ' + text + ' not found', { id: text });
    try {
      await net('/net/react', { device_id: state.deviceId, token: auth.token, id: text, reaction: reaction || '' });
    } catch (err) {
      if (err.status === 401) onServerLogout();
      if (err.netCode === 'msg_not_found') {
        throw new WPPError('msg_not_found', 'Message ' + text + ' not found', { id: text });
      }
      throw err;
    }
    return { sendMsgResult: 'OK' };
  }

  // wa-js's chat.msg_edited follows MsgStore's change:latestEditMsgKey, so only a message
  // the page holds reports it: `chat` is msg.to (our own id for an incoming edit), `id`
  // the original's key as a string, `msg` the original with the new body.
  function applyEdit(msg, text, editKey) {
    msg.body = text;
    msg.latestEditMsgKey = editKey;
    emit('chat.msg_edited', { chat: msg.to, id: msg.id.toString(), msg: msg });
  }

  function deliverEdit(data) {
    var msg = messages.get(data.key);
    if (!msg) return;
    applyEdit(msg, data.text, new MsgKey(false, msg.id.remote, data.edit_id, msg.id.participant));
  }

  // wa-js's chat.msg_revoke: the revoke arrives as a new protocol message; refId is the
  // revoked message's key. The message itself turns into type 'revoked'.
  function deliverRevoke(data) {
    var ref = MsgKey.fromString(data.key);
    var remote = ref.remote;
    var sender = new Wid(data.from);
    var msg = messages.get(data.key);
    if (msg) {
      msg.type = 'revoked';
      msg.body = '';
    }
    emit('chat.msg_revoke', {
      author: remote.isGroup() ? sender : undefined,
      from: remote.isGroup() ? remote : sender,
      id: new MsgKey(false, remote, data.revoke_id, remote.isGroup() ? sender : null),
      refId: ref,
      to: meIn(remote),
      type: 'revoke',
    });
  }

  function ownKnown(msgId) {
    var key = keyOf(msgId);
    var text = key ? key._serialized : String(msgId);
    var msg = key && messages.get(key._serialized);
    if (!msg) throw new WPPError('msg_not_found', 'Message ' + text + ' not found', { id: text });
    return msg;
  }

  // wa-js's editMessage: WA's canEditMsg (our own text, still editable) or
  // edit_message_error; answers the ORIGINAL message's id with latestEditMsgKey.
  async function editMessage(msgId, newText, options) {
    await readyPromise;
    await whenMain();
    var msg = ownKnown(msgId);
    if (!msg.id.fromMe || msg.type !== 'chat' || typeof newText !== 'string' || !newText) {
      throw new WPPError('edit_message_error', 'Cannot edit this message', { id: msg.id.toString() });
    }
    var auth = state.auth;
    var answer = await net('/net/edit', {
      device_id: state.deviceId,
      token: auth.token,
      id: msg.id._serialized,
      text: newText,
    });
    var editKey = new MsgKey(true, msg.id.remote, answer.edit_id, msg.id.participant);
    applyEdit(msg, newText, editKey);
    return {
      id: msg.id.toString(),
      ack: msg.ack,
      latestEditMsgKey: editKey,
      from: msg.from._serialized,
      to: msg.to._serialized,
      sendMsgResult: null,
    };
  }

  // wa-js's deleteMessage(chatId, ids, deleteMediaInDevice = false, revoke = false): a
  // revoke for our own messages, else deleted for me only; one object for a string id.
  async function deleteMessage(chatId, ids, deleteMediaInDevice, revoke) {
    await readyPromise;
    await whenMain();
    chatWid(chatId);
    var list = Array.isArray(ids) ? ids : [ids];
    var results = [];
    for (var i = 0; i < list.length; i++) {
      var msg = ownKnown(list[i]);
      var sentByMe = !!msg.id.fromMe;
      if (revoke && sentByMe) {
        await net('/net/revoke', { device_id: state.deviceId, token: state.auth.token, id: msg.id._serialized });
        msg.type = 'revoked';
        msg.body = '';
        results.push({ id: msg.id.toString(), sendMsgResult: 'OK', isRevoked: true, isDeleted: false, isSentByMe: true });
      } else {
        messages.delete(msg.id._serialized);
        results.push({ id: msg.id.toString(), sendMsgResult: 'OK', isRevoked: false, isDeleted: true, isSentByMe: sentByMe });
      }
    }
    return Array.isArray(ids) ? results : results[0];
  }

  // ---------------------------------------------------------------- sending

  function myWid() {
    return state.authenticated && state.auth ? new Wid(state.auth.phone + '@c.us') : undefined;
  }

  function myLid() {
    if (!state.authenticated || !state.auth || !state.auth.lid) throw new Error('no LID for this user');
    return new Wid(state.auth.lid);
  }

  // Our own wid in a chat: the LID in groups and LID chats (wa-js's prepareRawMessage).
  function meIn(chat) {
    return chat.isGroup() || chat.isLid() ? myLid() : myWid();
  }

  // wa-js's generateMessageID: a fromMe key; in groups our LID is the participant.
  function newKey(chat) {
    return new MsgKey(true, chat, newMessageId(), chat.isGroup() ? myLid() : null);
  }

  /** The key of a send: a fresh one, or the caller's `messageId` checked as wa-js does. */
  function keyFor(chat, messageId) {
    if (!messageId) return newKey(chat);
    var key = keyOf(messageId);
    if (!key) throw new Error('messageId is not a message key: ' + messageId);
    if (!key.fromMe) {
      throw new WPPError('message_key_is_not_from_me', 'Message key is not from me', {
        messageId: key.toString(),
      });
    }
    if (!key.remote.equals(chat)) {
      throw new WPPError('message_key_remote_id_is_not_same_of_chat', 'Message key remote ID is not same of chat', {
        messageId: key.toString(),
      });
    }
    return key;
  }

  /** The message a send quotes, from the store or the device's history; else msg_not_found. */
  async function quotedFor(quotedMsg, auth) {
    var key = keyOf(quotedMsg);
    var text = key ? key._serialized : String(quotedMsg && (quotedMsg._serialized || quotedMsg));
    var known = key && messages.get(key._serialized);
    if (known) return { key: known.id, sender: known.author || known.from, remote: known.id.remote };
    if (key) {
      try {
        var found = await net('/net/message', { device_id: state.deviceId, token: auth.token, id: text });
        return { key: key, sender: new Wid(found.sender), remote: new Wid(found.remote) };
      } catch (err) {
        if (err.status === 401) onServerLogout();
        if (err.netCode !== 'msg_not_found') throw err;
      }
    }
    throw new WPPError('msg_not_found', 'Message ' + text + ' not found', { id: text });
  }

  function checkPayload(payload) {
    if (payload.type === 'text' && !payload.text) throw new Error('the message text is empty');
    if (payload.type === 'location') {
      [
        ['lat', 90],
        ['lng', 180],
      ].forEach(function (pair) {
        var value = payload[pair[0]];
        if (typeof value !== 'number' || !isFinite(value) || Math.abs(value) > pair[1]) {
          throw new Error(pair[0] + ' must be a number within +-' + pair[1]);
        }
      });
    }
    if (MEDIA_TYPES.indexOf(payload.type) >= 0 && !payload.data) throw new Error('the file is empty');
  }

  function ownModel(key, chat, payload, quoted) {
    var msg = new MsgModel({
      id: key,
      t: Math.floor(Date.now() / 1000),
      from: meIn(chat),
      to: chat,
      self: 'out',
      isNewMsg: true,
      local: true,
      ack: 0,
      type: payload.type === 'text' ? 'chat' : payload.type,
      body: payload.type === 'text' ? payload.text : payload.caption || '',
      isMedia: MEDIA_TYPES.indexOf(payload.type) >= 0,
      isGroupMsg: chat.isGroup(),
      isForwarded: !!payload.forwarded,
    });
    if (msg.isMedia) {
      if (payload.caption != null) msg.caption = payload.caption;
      if (payload.filename != null) msg.filename = payload.filename;
      msg.mimetype = payload.mimetype;
    }
    if (payload.type === 'poll_creation') {
      msg.pollName = payload.poll_name;
      msg.pollOptions = payload.poll_options;
      msg.pollSelectableOptionsCount = payload.selectable_count;
    }
    if (payload.type === 'location') {
      msg.lat = payload.lat;
      msg.lng = payload.lng;
      msg.loc = locText(payload.name, payload.address);
    }
    if (quoted) {
      msg.quotedStanzaID = quoted.key.id;
      msg.quotedParticipant = quoted.sender;
      msg.quotedRemoteJid = quoted.remote;
    }
    return msg;
  }

  /** Hand a send to the network after the ones before it (WhatsApp's send queue). */
  function post(body) {
    var answer = state.outbox.then(function () {
      return net('/net/send', body);
    });
    state.outbox = answer.catch(function () {});
    return answer;
  }

  /**
   * The send path of wa-js's sendRawMessage and sendFileMessage: the message is added (and
   * reported) at once with ack 0; with waitForAck (default) the call then waits, with no
   * timeout, for the network's answer, however long the device stays offline.
   */
  async function send(chatId, payload, options, withChatFields) {
    var opts = Object.assign({ waitForAck: true }, options || {});
    await readyPromise;
    var chat = chatWid(chatId);
    await whenMain();
    var auth = state.auth;
    var key = keyFor(chat, opts.messageId);
    var quoted = opts.quotedMsg ? await quotedFor(opts.quotedMsg, auth) : null;
    var mentioned = mentionedOf(opts.mentionedList);
    checkPayload(payload);
    var msg = messages.get(key._serialized);
    if (!msg) {
      msg = ownModel(key, chat, payload, quoted);
      addMessage(msg);
    }
    var body = Object.assign({ device_id: state.deviceId, token: auth.token, to: chat._serialized }, payload);
    body.message_id = key.id;
    if (quoted) body.quoted = quoted.key.id;
    if (mentioned) {
      msg.mentionedJidList = mentioned;
      body.mentioned = mentioned.map(String);
    }
    // wa-js's default is true; the sandbox fetches no preview, it notes the option.
    if (payload.type === 'text') body.link_preview = opts.linkPreview !== false;
    var outcome = post(body).then(
      function (answer) {
        setAck(msg, answer.ack);
        return answer.result === 'OK'
          ? { messageSendResult: 'OK', t: answer.t }
          : { messageSendResult: answer.result };
      },
      function (err) {
        // The network forgot this device (unlinked while we were away).
        if (err.status === 401) onServerLogout();
        throw err;
      },
    );
    var result = { id: key._serialized, ack: msg.ack };
    if (withChatFields) Object.assign(result, { from: msg.from._serialized, to: chat._serialized });
    if (!opts.waitForAck) {
      outcome.catch(function (err) {
        console.error('send of ' + key + ' failed', err);
      });
      result.sendMsgResult = null;
      return result;
    }
    var sendMsgResult = await outcome;
    result.ack = msg.ack;
    result.sendMsgResult = sendMsgResult;
    return result;
  }

  /** wa-js's prepareRawMessage: mentionedList must be an array of user ids. */
  function mentionedOf(list) {
    if (!list) return null;
    if (!Array.isArray(list)) {
      throw new WPPError('mentioned_list_is_not_array', 'The option mentionedList is not an array', {
        mentionedList: list,
      });
    }
    return list.map(function (id) {
      var wid = id instanceof Wid ? id : assertWid(id);
      if (!wid.isUser()) {
        throw new WPPError('mentioned_is_not_user', 'Mentioned is not an user', { mentionedId: String(wid) });
      }
      return wid;
    });
  }

  // A data URL, as wa-js's parser reads it; null when `text` is not one.
  function parseDataUrl(text) {
    var match = /^data:([^;,]*)((?:;[^;,]*)*),([\s\S]*)$/.exec(text);
    if (!match) return null;
    var isBase64 = match[2].split(';').indexOf('base64') >= 0;
    var data;
    try {
      data = isBase64
        ? match[3].replace(/\s+/g, '')
        : bytesToBase64(new TextEncoder().encode(decodeURIComponent(match[3])));
    } catch (err) {
      return null;
    }
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

  // wa-js's isUrl: absolute http(s) only.
  function isUrl(text) {
    if (!/^https?:\/\//i.test(text.trim())) return false;
    try {
      var url = new URL(text.trim());
      return url.protocol === 'http:' || url.protocol === 'https:';
    } catch (err) {
      return false;
    }
  }

  /**
   * wa-js's convertToFile: a Blob/File, an http(s) URL (fetched by the page), a data URL or
   * bare base64; any other string throws the bare string "invalid_data_url".
   */
  async function fileOf(content) {
    if (typeof Blob !== 'undefined' && content instanceof Blob) {
      var parsed = parseDataUrl(await blobToDataUrl(content));
      return { mimetype: content.type || null, data: parsed ? parsed.data : '', filename: content.name || null };
    }
    if (typeof content !== 'string') throw new TypeError('content must be a string, a Blob or a File');
    if (isUrl(content)) {
      var response = await fetch(content);
      return fileOf(await response.blob());
    }
    var dataUrl = parseDataUrl(content);
    if (!dataUrl && BASE64.test(content)) dataUrl = parseDataUrl('data:;base64,' + content);
    if (!dataUrl) throw 'invalid_data_url';
    return { mimetype: dataUrl.mimetype, data: dataUrl.data, filename: null };
  }

  function mediaKind(mimetype) {
    var major = String(mimetype).split('/')[0];
    return ['image', 'video', 'audio'].indexOf(major) >= 0 ? major : 'document';
  }

  async function sendFileMessage(chatId, content, options) {
    var opts = Object.assign({ type: 'auto-detect' }, options || {});
    await readyPromise;
    chatWid(chatId);
    var file = await fileOf(content);
    var mimetype = opts.mimetype || file.mimetype || 'application/octet-stream';
    var type = opts.type === 'auto-detect' ? mediaKind(mimetype) : opts.type;
    if (FILE_TYPES.indexOf(type) < 0) throw new Error('type must be auto-detect or one of ' + FILE_TYPES.join(', '));
    // wa-js prepares audio with isPtt as a voice note: WhatsApp's message type `ptt`.
    if (type === 'audio' && opts.isPtt) type = 'ptt';
    var payload = { type: type, data: file.data, mimetype: mimetype };
    if (opts.caption != null) payload.caption = String(opts.caption);
    var filename = opts.filename || file.filename;
    if (filename) payload.filename = String(filename);
    // wa-js's sendFileMessage answers {id, ack, sendMsgResult}: no from/to.
    return send(chatId, payload, opts, false);
  }

  async function sendTextMessage(chatId, content, options) {
    return send(chatId, { type: 'text', text: content == null ? '' : String(content) }, options, true);
  }

  async function sendLocationMessage(chatId, options) {
    var opts = options || {};
    // wa-js parses string coordinates with parseFloat.
    var lat = typeof opts.lat === 'string' ? parseFloat(opts.lat) : opts.lat;
    var lng = typeof opts.lng === 'string' ? parseFloat(opts.lng) : opts.lng;
    var payload = { type: 'location', lat: lat, lng: lng };
    if (opts.name != null) payload.name = String(opts.name);
    if (opts.address != null) payload.address = String(opts.address);
    return send(chatId, payload, opts, true);
  }

  /** wa-js's sendCreatePollMessage: options get their position as localId. */
  async function sendCreatePollMessage(chatId, name, choices, options) {
    var opts = options || {};
    var payload = {
      type: 'poll_creation',
      poll_name: String(name),
      poll_options: (choices || []).map(function (choice, index) {
        return { name: String(choice), localId: index };
      }),
      selectable_count: opts.selectableCount || 0,
    };
    return send(chatId, payload, opts, true);
  }

  // As the bundle fills it (its d.ts says number[]): a sparse array indexed by localId,
  // holding the chosen option objects.
  function onPollVote(data) {
    var selected = [];
    (data.options || []).forEach(function (option) {
      selected[option.localId] = { name: option.name, localId: option.localId };
    });
    emit('chat.poll_response', {
      msgId: MsgKey.fromString(data.key),
      chatId: createWid(data.chat),
      selectedOptions: selected,
      timestamp: data.t,
      sender: createWid(data.voter),
    });
  }

  async function downloadMedia(id) {
    await readyPromise;
    if (!state.authenticated) throw new Error('not logged in');
    var key = keyOf(id);
    var text = key ? key._serialized : String(id);
    var url =
      '/net/media?device=' +
      encodeURIComponent(state.deviceId) +
      '&token=' +
      encodeURIComponent(state.auth.token) +
      '&id=' +
      encodeURIComponent(text);
    var response = await fetch(url, { cache: 'no-store' });
    if (response.ok) return response.blob();
    try {
      await answerOf(response);
    } catch (err) {
      if (err.netCode === 'msg_not_found') {
        throw new WPPError('msg_not_found', 'Message ' + text + ' not found', { id: text });
      }
      if (err.netCode === 'message_not_contains_media') {
        throw new WPPError('message_not_contains_media', 'Message ' + text + ' not contains media', { id: text });
      }
      if (err.status === 401) onServerLogout();
      throw err;
    }
  }

  /**
   * wa-js's forwardMessages: the chat is found (or created), each message looked up
   * (msg_not_found), then WhatsApp forwards them; it answers the messages it could NOT
   * forward (here: kinds the sandbox does not forward, such as polls) and never throws.
   */
  async function forwardMessages(toChatId, msgsId) {
    await readyPromise;
    var chat = await findChat(toChatId);
    var originals = (msgsId || []).map(function (id) {
      var key = keyOf(id);
      var text = key ? key._serialized : String(id);
      var found = key && messages.get(key._serialized);
      if (!found) throw new WPPError('msg_not_found', 'Message ' + text + ' not found', { id: text });
      return found;
    });
    var failed = [];
    for (var i = 0; i < originals.length; i++) {
      var payload = await forwardPayload(originals[i]);
      if (!payload) {
        failed.push(originals[i]);
        continue;
      }
      payload.forwarded = true;
      await send(chat.id, payload, { waitForAck: false }, false);
    }
    return failed;
  }

  /** What a forwarded copy carries: the original's content (its media downloaded again). */
  async function forwardPayload(msg) {
    if (msg.type === 'chat') return { type: 'text', text: msg.body };
    if (msg.type === 'location') return { type: 'location', lat: msg.lat, lng: msg.lng, name: msg.loc || undefined };
    if (MEDIA_TYPES.indexOf(msg.type) < 0) return null;
    var file = await fileOf(await downloadMedia(msg.id));
    var payload = { type: msg.type, data: file.data, mimetype: msg.mimetype || file.mimetype };
    if (msg.caption) payload.caption = msg.caption;
    if (msg.filename) payload.filename = msg.filename;
    return payload;
  }

  // wa-js's chat.find: the chat, created if needed (here: a ChatModel with just its id).
  async function findChat(chatId) {
    await readyPromise;
    var wid = chatWid(chatId);
    if (!state.authenticated) throw new Error('Failed to find or create chat for ' + wid);
    if (!chats.has(wid._serialized)) chats.set(wid._serialized, new ChatModel(wid));
    return chats.get(wid._serialized);
  }

  async function generateMessageID(chat) {
    var wid;
    if (chat instanceof Wid) wid = chat;
    else if (chat instanceof ChatModel) wid = chat.id;
    else if (chat && typeof chat === 'object' && chat.id && typeof chat.id === 'object') wid = chatWid(chat.id);
    else wid = chatWid(chat);
    return newKey(wid);
  }

  // ---------------------------------------------------------------- chats

  /** WhatsApp's ChatStore on a new message: the chat exists, moves up, counts it unread. */
  function touchChat(msg) {
    var wid = msg.id.remote;
    var chat = chats.get(wid._serialized);
    if (!chat) {
      chat = new ChatModel(wid);
      chats.set(wid._serialized, chat);
    }
    chat.t = msg.t;
    chat.touched = ++chatTouches;
    chat.lastReceivedKey = msg.id;
    if (!msg.id.fromMe && !msg.subtype) chat.unreadCount += 1;
  }

  // ChatStore's order: the chat with the newest message first (within a second, the one
  // that got its message last).
  var chatTouches = 0;
  function chatList() {
    return Array.from(chats.values()).sort(function (a, b) {
      return (b.t || 0) - (a.t || 0) || (b.touched || 0) - (a.touched || 0);
    });
  }

  // wa-js's assertGetChat: only a chat already in ChatStore.
  function getChat(chatId) {
    var wid = assertWid(chatId);
    var chat = chats.get(wid._serialized);
    if (!chat) throw new WPPError('chat_not_found', 'Chat not found for ' + wid);
    return chat;
  }

  /** What the account did in a chat, as WhatsApp's servers hear it (receipts, chat state). */
  async function chatNet(chat, action, extra) {
    var auth = state.auth;
    if (!auth) throw new Error('not logged in');
    var body = Object.assign(
      { device_id: state.deviceId, token: auth.token, chat: chat._serialized, action: action },
      extra || {},
    );
    try {
      return await net('/net/chat', body);
    } catch (err) {
      if (err.status === 401) onServerLogout();
      throw err;
    }
  }

  /** wa-js's chat.list: filters, then `count` chats from the anchor `id` on. */
  async function listChats(options) {
    await readyPromise;
    var e = options || {};
    var count = e.count == null ? Infinity : e.count;
    var list = chatList();
    if (e.onlyUsers) list = list.filter(function (c) { return c.isUser; });
    if (e.onlyGroups) list = list.filter(function (c) { return c.id.isGroup(); });
    if (e.onlyWithUnreadMessage) list = list.filter(function (c) { return c.hasUnread; });
    if (e.onlyArchived) list = list.filter(function (c) { return c.archive; });
    var anchor = e.id ? chats.get(assertWid(e.id)._serialized) || null : null;
    var start = anchor ? list.indexOf(anchor) : 0;
    if (e.direction === 'before') {
      var from = start - count < 0 ? 0 : start - count;
      return list.slice(from, from + count >= start ? start : from + count);
    }
    return list.slice(start, start + count);
  }

  /**
   * wa-js's chat.getMessages: `count` messages (20 by default, -1 all) before (default) or
   * after the message `id`, oldest first; without `id`, the newest ones, the chat's last
   * message included.
   */
  async function getMessages(chatId, options) {
    await readyPromise;
    var o = options || {};
    var chat = getChat(chatId);
    var count = o.count || 20;
    var direction = o.direction === 'after' ? 'after' : 'before';
    var anchorKey = o.id || (chat.lastReceivedKey ? chat.lastReceivedKey.toString() : undefined);
    if (count === -1) count = Infinity;
    if (!o.id && anchorKey) count--;
    if (!anchorKey) return [];
    var inChat = Array.from(messages.values()).filter(function (m) {
      return m.id.remote.equals(chat.id);
    });
    var at = inChat.findIndex(function (m) {
      return m.id._serialized === anchorKey;
    });
    if (at < 0) return [];
    var found =
      direction === 'before'
        ? inChat.slice(Math.max(0, at - count), at)
        : inChat.slice(at + 1, at + 1 + count);
    if (!o.id) found.push(inChat[at]);
    return found;
  }

  /** wa-js's markIsRead: WhatsApp's sendSeen (read receipts); the unread count before. */
  async function markIsRead(chatId) {
    var chat = getChat(chatId);
    var unread = chat.unreadCount;
    var ids = [];
    if (unread > 0) {
      var inChat = Array.from(messages.values()).filter(function (m) {
        return m.id.remote.equals(chat.id) && !m.id.fromMe && !m.subtype;
      });
      ids = inChat.slice(-unread).map(function (m) {
        return m.id.id;
      });
    }
    await chatNet(chat.id, 'read', { ids: ids });
    chat.unreadCount = 0;
    return { wid: chat.id, unreadCount: unread };
  }

  /** wa-js's archive/unarchive: an error when the chat already is. */
  async function setArchive(chatId, archive) {
    if (archive === undefined) archive = true;
    var wid = assertWid(chatId);
    var chat = getChat(wid);
    if (chat.archive === archive) {
      var verb = archive ? 'archived' : 'unarchived';
      throw new WPPError((archive ? 'archive' : 'unarchive') + '_error', 'The chat ' + wid + ' is already ' + verb, {
        wid: wid,
        archive: archive,
      });
    }
    await chatNet(wid, archive ? 'archive' : 'unarchive');
    chat.archive = archive;
    return { wid: wid, archive: archive };
  }

  /** wa-js's delete: the chat (found or created) and its messages go; `status` 200. */
  async function deleteChat(chatId) {
    var wid = assertWid(chatId);
    var chat = await findChat(wid);
    await chatNet(chat.id, 'delete');
    chats.delete(wid._serialized);
    Array.from(messages.keys()).forEach(function (key) {
      if (messages.get(key).id.remote.equals(wid)) messages.delete(key);
    });
    return { wid: wid, status: 200 };
  }

  /** wa-js's markIsComposing/markIsRecording(id, duration?): paused after `duration` ms. */
  function chatState(action) {
    return async function (chatId, duration) {
      var chat = getChat(chatId);
      await chatNet(chat.id, action);
      if (chat.pausedTimerId) {
        clearTimeout(chat.pausedTimerId);
        delete chat.pausedTimerId;
      }
      if (duration) {
        await new Promise(function (resolve) {
          chat.pausedTimerId = setTimeout(function () {
            markIsPaused(chatId).then(resolve, resolve);
          }, duration);
        });
      }
    };
  }

  async function markIsPaused(chatId) {
    var chat = getChat(chatId);
    await chatNet(chat.id, 'paused');
  }

  // ---------------------------------------------------------------- presence

  /** wa-js's contact.subscribePresence: the ids subscribed; one that fails is left out. */
  async function subscribePresence(ids) {
    await readyPromise;
    if (!Array.isArray(ids)) ids = [ids];
    var auth = state.auth;
    var done = [];
    for (var i = 0; i < ids.length; i++) {
      try {
        var wid = createWid(ids[i]);
        await net('/net/presence', { device_id: state.deviceId, token: auth.token, id: wid._serialized });
        done.push(wid);
      } catch (err) {
        if (err && err.status === 401) onServerLogout();
      }
    }
    return done;
  }

  /** wa-js's chat.presence_change, as PresenceStore's chat state of a user changes. */
  function onPresence(data) {
    var wid = new Wid(data.id);
    var contact = contacts.get(wid._serialized);
    queueMicrotask(function () {
      emit('chat.presence_change', {
        id: wid,
        isOnline: data.state !== 'unavailable',
        isGroup: false,
        isUser: true,
        shortName: contact && contact.pushname ? contact.pushname : '',
        state: data.state,
        t: Date.now(),
        isContact: true,
      });
    });
  }

  // ---------------------------------------------------------------- contact

  // wa-js's getPnLidEntry, from what the network told this page (WhatsApp's lidPnCache);
  // a LID's number is only ever read from that cache.
  async function getPnLidEntry(contactId) {
    await readyPromise;
    var wid = assertWid(contactId);
    if (wid.server !== 'c.us' && wid.server !== 'lid') {
      var message = 'Invalid WID value for ' + wid + ' - getPnLidEntry only supports @c.us and @lid.';
      throw new WPPError('invalid_wid', message, { id: wid });
    }
    var lid = wid.isLid() ? wid : pnToLid.get(wid._serialized);
    var pn = wid.isLid() ? lidToPn.get(wid._serialized) : wid;
    if (!wid.isLid() && !lid) {
      // As wa-js: a number's LID not in the cache is asked of the server (queryExists).
      var found = await queryExists(wid);
      if (found && found.lid) lid = found.lid;
    }
    var contact = contacts.get((lid || pn || wid)._serialized);
    var plain = function (w) {
      return w ? { id: w.user, server: w.server, _serialized: w._serialized } : undefined;
    };
    return {
      lid: plain(lid),
      phoneNumber: plain(pn),
      contact: contact ? { pushname: contact.pushname } : undefined,
    };
  }

  /** The network's answer about a user id (its usync, picture and status queries). */
  async function contactNet(wid) {
    var auth = state.auth;
    if (!auth) throw new Error('not logged in');
    try {
      return await net('/net/contact', { device_id: state.deviceId, token: auth.token, id: wid._serialized });
    } catch (err) {
      if (err.status === 401) onServerLogout();
      throw err;
    }
  }

  /**
   * wa-js's queryExists (= queryWidExists): a ContactStore hit answers locally with the id
   * as given; otherwise the server, its answer cached 5 min (15 s for null); a server error
   * is null too.
   */
  async function queryExists(contactId) {
    await readyPromise;
    var wid = assertWid(contactId);
    var other = wid.isLid() ? lidToPn.get(wid._serialized) : pnToLid.get(wid._serialized);
    if (contacts.has(wid._serialized) || (other && contacts.has(other._serialized))) {
      return { wid: wid, biz: false, lid: pnToLid.get(wid._serialized) };
    }
    var key = '+' + wid._serialized;
    if (existsCache.has(key)) return existsCache.get(key);
    var found = contactNet(wid)
      .then(function (answer) {
        if (!answer.exists) return null;
        learnPair(answer.lid, answer.wid);
        var result = new Wid(answer.wid);
        return { wid: result, biz: false, lid: pnToLid.get(result._serialized) };
      })
      .catch(function () {
        return null;
      })
      .then(function (result) {
        setTimeout(function () {
          existsCache.delete(key);
        }, result ? EXISTS_TTL_MS : MISSING_TTL_MS);
        return result;
      });
    existsCache.set(key, found);
    return found;
  }

  /** wa-js's getProfilePictureUrl: ProfilePicThumbStore.find, then `imgFull` (or `img`). */
  async function getProfilePictureUrl(contactId, full) {
    await readyPromise;
    var wid = assertWid(contactId);
    var answer = await contactNet(wid);
    // One picture per contact here: the thumbnail and the full image are the same URL.
    return answer.exists && answer.picture ? answer.picture : undefined;
  }

  /** wa-js's getStatus: null for a number not on WhatsApp, else StatusStore's text or null. */
  async function getStatus(contactId) {
    var wid = assertWid(contactId);
    if (!(await queryExists(wid))) return null;
    var answer = await contactNet(wid);
    return answer.about || null;
  }

  // ---------------------------------------------------------------- blocklist

  async function setBlocked(chatId, block) {
    await readyPromise;
    var wid = assertWid(chatId);
    var auth = state.auth;
    if (!auth) throw new Error('not logged in');
    var answer;
    try {
      answer = await net('/net/blocklist', {
        device_id: state.deviceId,
        token: auth.token,
        id: wid._serialized,
        block: block,
      });
    } catch (err) {
      if (err.status === 401) onServerLogout();
      throw err;
    }
    blockedIds = new Set(answer.blocked || []);
    return { wid: wid, isBlocked: isBlocked(wid) };
  }

  function isBlocked(chatId) {
    return blockedIds.has(assertWid(chatId)._serialized);
  }

  // ---------------------------------------------------------------- group
  //
  // wa-js's WPP.group functions. The network keeps every group (`/net/group`); the page
  // keeps a ChatModel per group it has seen, with its groupMetadata, as WhatsApp's ChatStore.

  // The codes wa-js's group functions throw that the network may answer with.
  var GROUP_CODES = [
    'chat_not_found',
    'not_a_group',
    'group_you_are_not_admin',
    'participant_not_exists',
    'group_participant_is_not_a_group_member',
    'group_participant_is_already_a_group_admin',
    'group_participant_is_already_not_a_group_admin',
    'invalid_invite_code',
  ];

  async function groupNet(op, args) {
    await readyPromise;
    var auth = state.auth;
    if (!auth || !state.authenticated) throw new Error('not logged in');
    try {
      var body = Object.assign({ device_id: state.deviceId, token: auth.token, op: op }, args);
      return (await net('/net/group', body)).value;
    } catch (err) {
      if (err.status === 401) onServerLogout();
      if (GROUP_CODES.indexOf(err.netCode) >= 0) throw new WPPError(err.netCode, err.message);
      throw err;
    }
  }

  /** The group's ChatModel in this page's ChatStore, updated from the network's metadata. */
  function groupChat(info) {
    var wid = new Wid(info.id);
    var chat = chats.get(wid._serialized) || new ChatModel(wid);
    chat.name = info.subject;
    chat.formattedTitle = info.subject;
    chat.groupMetadata = {
      id: wid,
      subject: info.subject,
      desc: info.description || undefined,
      owner: new Wid(info.owner),
      creation: info.creation,
      size: info.participants.length,
      participants: info.participants.map(participantModel),
    };
    chats.set(wid._serialized, chat);
    return chat;
  }

  function participantModel(p) {
    return { id: new Wid(p.id), isAdmin: p.isAdmin, isSuperAdmin: p.isSuperAdmin };
  }

  /** The group's id as a Wid: `not_a_group` for any other id (wa-js's ensureGroup). */
  function groupWid(groupId) {
    var wid = assertWid(groupId);
    if (!wid.isGroup()) throw new WPPError('not_a_group', 'Chat ' + wid + ' is not a group', { groupId: wid });
    return wid;
  }

  function participantIds(ids) {
    return (Array.isArray(ids) ? ids : [ids]).map(function (id) {
      return assertWid(id)._serialized;
    });
  }

  async function ensureGroup(groupId) {
    var wid = groupWid(groupId);
    return groupChat(await groupNet('info', { id: wid._serialized }));
  }

  async function getAllGroups() {
    var groups = await groupNet('list', {});
    return groups.map(groupChat);
  }

  async function createGroup(groupName, participantsIds) {
    var answer = await groupNet('create', { subject: groupName, participants: participantIds(participantsIds) });
    await ensureGroup(answer.gid);
    var participants = {};
    Object.keys(answer.participants).forEach(function (id) {
      participants[id] = { wid: id, code: answer.participants[id], invite_code: null, invite_code_exp: null };
    });
    return { gid: new Wid(answer.gid), participants: participants };
  }

  async function addParticipants(groupId, participantsIds) {
    var wid = groupWid(groupId);
    var codes = await groupNet('add', { id: wid._serialized, participants: participantIds(participantsIds) });
    var result = {};
    Object.keys(codes).forEach(function (id) {
      result[id] = {
        wid: id,
        code: codes[id],
        message: codes[id] === 200 ? 'OK' : 'Conflict',
        invite_code: null,
        invite_code_exp: null,
      };
    });
    return result;
  }

  function changeParticipants(op) {
    return async function (groupId, participantsIds) {
      var wid = groupWid(groupId);
      await groupNet(op, { id: wid._serialized, participants: participantIds(participantsIds) });
    };
  }

  function setGroupText(op) {
    return async function (groupId, value) {
      var wid = groupWid(groupId);
      await groupNet(op, { id: wid._serialized, value: value });
      await ensureGroup(wid);
      return true;
    };
  }

  async function getParticipants(groupId) {
    return (await ensureGroup(groupId)).groupMetadata.participants;
  }

  function inviteCode(op) {
    return async function (groupId) {
      var wid = groupWid(groupId);
      return groupNet(op, { id: wid._serialized });
    };
  }

  async function joinGroup(inviteCode) {
    var answer = await groupNet('join', { code: String(inviteCode) });
    await ensureGroup(answer.id);
    return { id: answer.id, pendingApproval: !!answer.pendingApproval };
  }

  async function leaveGroup(groupId) {
    var wid = groupWid(groupId);
    await groupNet('leave', { id: wid._serialized });
  }

  // wa-js's group.participant_changed (it wraps WhatsApp's updateDBForGroupAction).
  function deliverGroupChange(data) {
    emit('group.participant_changed', {
      author: data.author,
      groupId: data.groupId,
      action: data.action,
      operation: data.operation,
      participants: data.participants.slice(),
    });
  }

  // ---------------------------------------------------------------- calls

  // Calls seen ringing on this page, by id: wa-js dedups call.incoming_call by id, and
  // call.reject without an id takes the first one still ringing.
  var calls = new Map();

  function onIncomingCall(data) {
    if (calls.has(data.id)) return;
    calls.set(data.id, { id: data.id, peerJid: data.peer, ringing: true });
    emit('call.incoming_call', {
      id: data.id,
      isGroup: !!data.group,
      isVideo: !!data.video,
      offerTime: data.offer_time,
      sender: createWid(data.peer),
      peerJid: data.peer,
    });
  }

  /** wa-js's call.reject: true, or call_not_found / call_is_not_incoming_ring. */
  async function rejectCall(callId) {
    await readyPromise;
    var call = callId
      ? calls.get(callId)
      : Array.from(calls.values()).find(function (c) {
          return c.ringing;
        });
    if (!call) throw new WPPError('call_not_found', 'Call ' + (callId || '<empty>') + ' not found', { callId: callId });
    if (!call.ringing) {
      throw new WPPError('call_is_not_incoming_ring', 'Call ' + call.id + ' is not incoming ring', { callId: call.id });
    }
    var auth = state.auth;
    if (!auth) throw new Error('not logged in');
    try {
      await net('/net/call/reject', { device_id: state.deviceId, token: auth.token, id: call.id });
    } catch (err) {
      if (err.status === 401) onServerLogout();
      // Rejected from another device of the account meanwhile: no longer ringing here.
      if (err.netCode === 'call_is_not_incoming_ring') {
        call.ringing = false;
        throw new WPPError('call_is_not_incoming_ring', 'Call ' + call.id + ' is not incoming ring', { callId: call.id });
      }
      throw err;
    }
    call.ringing = false;
    return true;
  }

  // ---------------------------------------------------------------- conn

  async function getAuthCode() {
    await readyPromise;
    if (state.screen === 'qr' && !state.authCode && state.refPromise) await state.refPromise;
    return state.screen === 'qr' ? state.authCode : null;
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
    if (!phone || typeof phone !== 'string') {
      throw new WPPError('send_the_phone_number_to_connect', "Can't get code for without phone number param");
    }
    await readyPromise;
    if (state.authenticated) {
      throw new WPPError('cannot_get_code_for_already_authenticated', "Can't get code for already authenticated user");
    }
    var answer = await net('/net/pairing', { device_id: state.deviceId, phone: phone });
    // The page now shows the code instead of a rotating QR (the stream stays in QR mode).
    clearTimers();
    state.epoch += 1;
    state.screen = 'code';
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

  // ---------------------------------------------------------------- util

  function blobToBase64(blob) {
    return blobToDataUrl(blob);
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
    onFullReady: onFullReadyCallback,
  };
  flag(loader, 'isInjected', function () {
    return true;
  });
  flag(loader, 'isReady', function () {
    return state.ready;
  });
  flag(loader, 'isFullReady', function () {
    return state.mainReadyFired;
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
        return state.ready;
      },
      isMainLoaded: function () {
        return state.mainLoaded;
      },
      // A latch, as in wa-js: true from the first conn.main_ready on, even after a logout.
      isMainReady: function () {
        return state.mainReadyFired;
      },
      isOnline: function () {
        return state.online;
      },
      isIdle: function () {
        return state.screen === 'idle';
      },
      isMultiDevice: function () {
        return true;
      },
      needsUpdate: function () {
        return false;
      },
      getMyUserId: myWid,
      getMyUserWid: myWid,
      getMyUserLid: myLid,
      getStreamData: function () {
        return { mode: state.streamMode, info: state.streamInfo };
      },
    },
    chat: {
      find: findChat,
      sendTextMessage: sendTextMessage,
      sendFileMessage: sendFileMessage,
      sendLocationMessage: sendLocationMessage,
      sendCreatePollMessage: sendCreatePollMessage,
      forwardMessages: forwardMessages,
      downloadMedia: downloadMedia,
      generateMessageID: generateMessageID,
      // wa-js's chat.get: the ChatModel WhatsApp Web holds, or undefined.
      get: function (chatId) {
        return chats.get(assertWid(chatId)._serialized);
      },
      list: listChats,
      getMessages: getMessages,
      markIsRead: markIsRead,
      archive: setArchive,
      unarchive: function (chatId) {
        return setArchive(chatId, false);
      },
      delete: deleteChat,
      markIsComposing: chatState('typing'),
      markIsRecording: chatState('recording'),
      markIsPaused: markIsPaused,
      sendReactionToMessage: sendReactionToMessage,
      editMessage: editMessage,
      deleteMessage: deleteMessage,
    },
    contact: {
      getPnLidEntry: getPnLidEntry,
      queryExists: queryExists,
      getProfilePictureUrl: getProfilePictureUrl,
      getStatus: getStatus,
      subscribePresence: subscribePresence,
    },
    call: {
      reject: rejectCall,
      rejectCall: rejectCall,
    },
    blocklist: {
      all: function () {
        return Array.from(blockedIds).map(function (id) {
          return new Wid(id);
        });
      },
      isBlocked: isBlocked,
      blockContact: function (chatId) {
        return setBlocked(chatId, true);
      },
      unblockContact: function (chatId) {
        return setBlocked(chatId, false);
      },
    },
    group: {
      ensureGroup: ensureGroup,
      getAllGroups: getAllGroups,
      create: createGroup,
      getParticipants: getParticipants,
      addParticipants: addParticipants,
      removeParticipants: changeParticipants('remove'),
      promoteParticipants: changeParticipants('promote'),
      demoteParticipants: changeParticipants('demote'),
      setSubject: setGroupText('subject'),
      setDescription: setGroupText('description'),
      getInviteCode: inviteCode('invite_code'),
      revokeInviteCode: inviteCode('revoke_invite_code'),
      join: joinGroup,
      leave: leaveGroup,
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
    return state.mainReadyFired;
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
      authenticated: state.streamMode === 'MAIN' ? 'Connected' : 'Loading chats…',
    }[state.screen];
    if (state.authenticated && state.auth) {
      text += ' as +' + state.auth.phone + (state.online ? '' : ' (offline)');
    }
    status.textContent = text;
    code.textContent =
      state.screen === 'qr' && state.authCode
        ? state.authCode.fullCode
        : state.screen === 'code'
          ? state.pairingCode || ''
          : '';
  }

  if (typeof document !== 'undefined') document.addEventListener('DOMContentLoaded', render);

  boot().catch(function (err) {
    console.error('sandbox WPP failed to start', err);
  });
})();
