// wa-sidecar page bridge: the only code that knows WhatsApp Web internals.
//
// Installed as an init script before navigation, right after the pinned wa-js bundle. It
// waits for `WPP.isReady`, follows wa-js's conn.* events and getters, and forwards what it
// sees, serialised to plain JSON, through one exposed binding. Python calls back through
// window.__waSidecar. What wa-js really does is written down with its sources in the
// project's docs (docs/wa-js.md); the comments below name the facts they rely on.
(() => {
  if (window.top !== window || window.__waSidecar) return;
  const BINDING = '__waSidecarEmit';
  // How long a send may take before Python is told it is pending (see sendWith).
  const DEFAULT_HANDOFF_MS = 20000;
  const SEEN_LIMIT = 5000;

  const send = (type, payload) => {
    try {
      window[BINDING](JSON.stringify({ type, payload: payload === undefined ? null : payload }));
    } catch (e) {
      // The binding is gone only while the browser is closing: nothing left to tell.
    }
  };

  // Wid / MsgKey objects carry `_serialized`; plain strings pass through.
  const ser = (value) => {
    if (value === null || value === undefined) return null;
    if (typeof value === 'string') return value;
    return value._serialized || String(value);
  };
  const num = (value) => (typeof value === 'number' && isFinite(value) ? value : null);
  // The bare message id of a MsgKey: receipts rebuild keys with another `remote` (a LID
  // for a message sent to @c.us), so only this part identifies a message.
  const bareId = (key) => {
    if (!key) return null;
    if (typeof key === 'object' && typeof key.id === 'string') return key.id;
    const parts = String(ser(key)).split('_');
    return parts.length >= 3 ? parts[2] : parts[0];
  };
  const isLid = (wid) => /@lid$/.test(ser(wid) || '');

  const authCode = (code) => (code ? { ref: code.ref, full_code: code.fullCode } : null);

  const me = () => {
    try {
      const wid = WPP.conn.getMyUserId();
      if (!wid) return null;
      return wid.user || ser(wid).split('@')[0];
    } catch (e) {
      return null;
    }
  };

  // ------------------------------------------------------------------ connection state
  //
  // conn.main_ready fires once, on the QR screen too, and isMainReady() never resets; so
  // "logged in and usable" is isAuthenticated() with stream mode MAIN, and every later
  // change shows in conn.stream_mode_changed / stream_info_changed / online. There is no
  // "disconnected" event.
  const conn = { mode: null, info: null, online: null };

  const readConn = () => {
    try {
      const data = WPP.conn.getStreamData();
      if (data) {
        conn.mode = data.mode === undefined ? conn.mode : data.mode;
        conn.info = data.info === undefined ? conn.info : data.info;
      }
    } catch (e) {
      // getStreamData needs WA's Stream module; keep what the events said
    }
    try {
      conn.online = !!WPP.conn.isOnline();
    } catch (e) {
      conn.online = conn.online === null ? true : conn.online;
    }
  };

  const connState = () => {
    let authenticated = false;
    try {
      authenticated = !!WPP.conn.isAuthenticated();
    } catch (e) {
      authenticated = false;
    }
    return {
      authenticated,
      mode: conn.mode || null,
      info: conn.info || null,
      online: conn.online !== false,
      me: authenticated ? me() : null,
    };
  };

  let lastState = '';
  const pushState = () => {
    const state = connState();
    const text = JSON.stringify(state);
    if (text === lastState) return;
    lastState = text;
    send('state', state);
  };

  // ------------------------------------------------------------------ messages

  const phoneOf = async (wid) => {
    if (!wid || !isLid(wid)) return null;
    try {
      const entry = await WPP.contact.getPnLidEntry(ser(wid));
      const phone = entry && entry.phoneNumber;
      return phone ? ser(phone).split('@')[0] : null;
    } catch (e) {
      return null;
    }
  };

  // quotedMsgId is a getter that throws on a message that is not a reply: ask
  // quotedStanzaID first.
  const quoted = (m) => {
    if (!m.quotedStanzaID) return null;
    let key = null;
    try {
      key = m.quotedMsgId;
    } catch (e) {
      key = null;
    }
    return { id: key ? ser(key) : null, ref: key ? bareId(key) : String(m.quotedStanzaID) };
  };

  const message = async (m) => {
    const from = ser(m.from);
    const author = ser(m.author);
    const reply = quoted(m);
    return {
      id: ser(m.id),
      ref: bareId(m.id),
      from_me: !!(m.id && m.id.fromMe),
      from,
      to: ser(m.to),
      author,
      from_phone: await phoneOf(m.from),
      author_phone: await phoneOf(m.author),
      type: m.type,
      subtype: m.subtype || null,
      body: m.type === 'chat' ? m.body || '' : null,
      caption: m.caption || null,
      filename: m.filename || null,
      mimetype: m.mimetype || null,
      size: num(m.size),
      timestamp: num(m.t),
      notify_name: m.notifyName || null,
      latitude: num(m.lat),
      longitude: num(m.lng),
      location_name: m.type === 'location' ? m.loc || null : null,
      quoted_id: reply ? reply.id : null,
      quoted_ref: reply ? reply.ref : null,
      // MsgModel.mentionedJidList: Wid[] (the users a text or caption mentions).
      mentioned: Array.isArray(m.mentionedJidList) ? m.mentionedJidList.map(ser).filter(Boolean) : [],
    };
  };

  // chat.new_message fires for an undecrypted message with type 'ciphertext', then again
  // for the same object once it is decrypted: hold the first back, forward each id once.
  const seen = new Set();
  const remember = (id) => {
    seen.add(id);
    if (seen.size > SEEN_LIMIT) seen.delete(seen.values().next().value);
  };
  const onMessage = async (m) => {
    try {
      if (!m || m.type === 'ciphertext') return;
      const id = ser(m.id);
      if (!id || seen.has(id)) return;
      remember(id);
      send('message', await message(m));
    } catch (e) {
      send('bridge_error', { where: 'chat.new_message', error: String(e) });
    }
  };

  // ------------------------------------------------------------------ sending

  const errorInfo = (e) => ({
    // WPPError keeps its code as an own property; some wa-js failures are plain errors,
    // and one is a bare string ("invalid_data_url").
    code: e && typeof e === 'object' && typeof e.code === 'string' ? e.code : typeof e === 'string' ? e : null,
    message: String((e && e.message) || e),
  });

  const outcome = (result) => ({
    ok: true,
    id: ser(result && result.id),
    ack: num(result && result.ack),
    result:
      result && result.sendMsgResult
        ? typeof result.sendMsgResult === 'string'
          ? result.sendMsgResult
          : result.sendMsgResult.messageSendResult || null
        : null,
  });

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // The message id is made first (on the chat wa-js finds, which may be an @lid chat), so
  // Python knows it before the message is handed over. Once handed, the call may stay
  // pending for as long as WhatsApp is offline (waitForAck has no timeout) and WhatsApp may
  // still deliver it later: after `handoffMs` Python hears "pending", and the final outcome
  // follows as a `send_result` event.
  const sendWith = async (to, handoffMs, call) => {
    // One clock for the whole call: finding the chat can wait on the network too.
    const deadline = sleep(handoffMs).then(() => null);
    const found = (async () => {
      const chat = await WPP.chat.find(to);
      return { chat, key: await WPP.chat.generateMessageID(chat) };
    })();
    let prepared;
    try {
      prepared = await Promise.race([found, deadline]);
    } catch (e) {
      return Object.assign({ ok: false, handed: false }, errorInfo(e));
    }
    if (!prepared) {
      // Nothing was handed over: the message may go another way.
      found.catch(() => null);
      return { ok: false, handed: false, code: null, message: 'WhatsApp Web did not find the chat in time' };
    }
    const { chat, key } = prepared;
    const id = ser(key);
    const ref = bareId(key);
    const settled = Promise.resolve()
      .then(() => call(chat.id, key))
      .then(outcome, (e) => Object.assign({ ok: false, handed: true, id }, errorInfo(e)));
    const first = await Promise.race([settled, deadline]);
    if (first) return Object.assign({ ref }, first, { id: first.id || id });
    settled.then((late) => send('send_result', Object.assign({ ref }, late, { id: late.id || id })));
    return { ok: true, pending: true, id, ref, ack: 0, result: null };
  };

  const blobToBase64 = (blob) =>
    new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(String(reader.result).split(',', 2)[1] || '');
      reader.onerror = () => reject(reader.error);
      reader.readAsDataURL(blob);
    });

  // ------------------------------------------------------------------ page operations
  //
  // What the API may ask a session's page (PAGE_OPS in adapters/base.py): one function per
  // name, each taking one plain object (already validated in Python) and answering JSON.
  const blockState = (result) => ({ id: ser(result.wid), blocked: !!result.isBlocked });
  const OPS = {
    // queryExists answers null for a number WhatsApp does not know, and for a server error
    // too; wa-js caches each answer (5 min, 15 s for null), so a batch repeated is cheap.
    'contacts.exists': ({ ids }) =>
      Promise.all(
        ids.map(async (id) => {
          const found = await WPP.contact.queryExists(id);
          return {
            id,
            exists: !!found,
            wid: found ? ser(found.wid) : null,
            lid: found && found.lid ? ser(found.lid) : null,
          };
        }),
      ),
    // undefined (no picture, or hidden from us) becomes null.
    'contacts.picture': async ({ id }) => (await WPP.contact.getProfilePictureUrl(id, true)) || null,
    'contacts.about': async ({ id }) => (await WPP.contact.getStatus(id)) || null,
    'contacts.block': async ({ id }) => blockState(await WPP.blocklist.blockContact(id)),
    'contacts.unblock': async ({ id }) => blockState(await WPP.blocklist.unblockContact(id)),
    // LID -> phone is cache-only in wa-js; phone -> LID asks the server when not cached.
    'contacts.ids': async ({ id }) => {
      const entry = await WPP.contact.getPnLidEntry(id);
      return {
        lid: entry && entry.lid ? entry.lid._serialized : null,
        phone: entry && entry.phoneNumber ? entry.phoneNumber._serialized : null,
      };
    },
    // message actions: a falsy reaction removes ours; unknown ids throw msg_not_found.
    'messages.react': async ({ id, reaction }) => {
      const result = await WPP.chat.sendReactionToMessage(id, reaction || false);
      return { result: result && typeof result.sendMsgResult === 'string' ? result.sendMsgResult : null };
    },
    // Answers the ORIGINAL message's id and the edit's own key (latestEditMsgKey);
    // edit_message_error when WhatsApp does not allow the edit.
    'messages.edit': async ({ id, text }) => {
      const result = await WPP.chat.editMessage(id, text);
      return { id: ser(result && result.id), edit_id: ser(result && result.latestEditMsgKey) };
    },
    // deleteMessage(chat, id, deleteMediaInDevice, revoke): revoke only for our own
    // messages (or as a group admin); for a string id it answers one object.
    'messages.revoke': async ({ chat, id }) => {
      const result = await WPP.chat.deleteMessage(chat, id, false, true);
      return { revoked: !!(result && result.isRevoked), deleted: !!(result && result.isDeleted) };
    },
    // forwardMessages answers the messages it could NOT forward (WhatsApp collects them and
    // does not throw); an unknown id throws msg_not_found. forwardMessage is deprecated.
    'messages.forward': async ({ to, id }) => {
      const failed = await WPP.chat.forwardMessages(to, [id]);
      return { forwarded: !(Array.isArray(failed) && failed.length) };
    },
    // Calls: reject by the id call.incoming_call gave; wa-js answers true, or throws
    // call_not_found / call_is_not_incoming_ring.
    'calls.reject': async ({ id }) => !!(await WPP.call.reject(id)),
  };

  // Groups (wa-js group functions): a group is one this account's ChatStore has (ensureGroup), so an
  // unknown or left group is wa-js's `chat_not_found`; ids come back serialized.
  const groupInfo = (chat) => {
    const meta = (chat && chat.groupMetadata) || {};
    return {
      id: ser(chat.id),
      subject: meta.subject || chat.name || null,
      description: meta.desc || null,
      owner: ser(meta.owner),
      created_at: num(meta.creation),
    };
  };
  const participant = (p) => ({ id: ser(p.id), is_admin: !!p.isAdmin, is_super_admin: !!p.isSuperAdmin });
  const participantCodes = (result) =>
    Object.values(result || {}).map((p) => ({ id: ser(p.wid), code: num(p.code) }));
  Object.assign(OPS, {
    'groups.list': async () => (await WPP.group.getAllGroups()).filter(Boolean).map(groupInfo),
    'groups.create': async ({ subject, participants }) => {
      const result = await WPP.group.create(subject, participants);
      return { id: ser(result.gid), participants: participantCodes(result.participants) };
    },
    'groups.info': async ({ id }) => {
      const chat = await WPP.group.ensureGroup(id);
      const members = await WPP.group.getParticipants(id);
      return Object.assign(groupInfo(chat), { participants: members.map(participant) });
    },
    'groups.participants': async ({ id }) => (await WPP.group.getParticipants(id)).map(participant),
    'groups.add': async ({ id, participants }) =>
      participantCodes(await WPP.group.addParticipants(id, participants)),
    'groups.remove': async ({ id, participants }) => {
      await WPP.group.removeParticipants(id, participants);
      return null;
    },
    'groups.promote': async ({ id, participants }) => {
      await WPP.group.promoteParticipants(id, participants);
      return null;
    },
    'groups.demote': async ({ id, participants }) => {
      await WPP.group.demoteParticipants(id, participants);
      return null;
    },
    'groups.subject': async ({ id, subject }) => !!(await WPP.group.setSubject(id, subject)),
    'groups.description': async ({ id, description }) =>
      !!(await WPP.group.setDescription(id, description)),
    'groups.invite': async ({ id }) => WPP.group.getInviteCode(id),
    'groups.revoke': async ({ id }) => WPP.group.revokeInviteCode(id),
    'groups.join': async ({ code }) => {
      const result = await WPP.group.join(code);
      return { id: ser(result.id), pending_approval: !!result.pendingApproval };
    },
    'groups.leave': async ({ id }) => {
      await WPP.group.leave(id);
      return null;
    },
  });

  // ------------------------------------------------------------------ chats
  //
  // A chat as the API shows it; ChatModel fields read as WhatsApp Web keeps them.
  const chatView = (c) => ({
    id: ser(c.id),
    name: c.formattedTitle || c.name || null,
    is_group: /@g\.us$/.test(ser(c.id) || ''),
    unread_count: num(c.unreadCount) || 0,
    archived: !!c.archive,
    timestamp: num(c.t),
  });
  // wa-js ends markIsComposing/Recording(id, duration) with markIsPaused after `duration`,
  // awaiting it: the bridge answers at once and keeps the timer, one per chat.
  const pauseTimers = new Map();
  const chatState = async (id, mark, ms) => {
    clearTimeout(pauseTimers.get(id));
    pauseTimers.delete(id);
    await mark(id);
    if (ms) {
      pauseTimers.set(
        id,
        setTimeout(() => {
          pauseTimers.delete(id);
          WPP.chat.markIsPaused(id).catch(() => null);
        }, ms),
      );
    }
  };
  Object.assign(OPS, {
    // wa-js starts from the top when the anchor chat is not in ChatStore: refuse instead,
    // with the code wa-js gives a chat it does not hold.
    'chats.list': async ({ count, direction, id }) => {
      if (id && !WPP.chat.get(id)) return Promise.reject({ code: 'chat_not_found', message: 'no such chat' });
      return (await WPP.chat.list({ count, direction, id: id || undefined })).map(chatView);
    },
    // Oldest first, as wa-js answers them; each one as an inbound message is forwarded.
    'chats.messages': async ({ id, count, direction, anchor }) =>
      Promise.all(
        (await WPP.chat.getMessages(id, { count, direction, id: anchor || undefined })).map(message),
      ),
    'chats.read': async ({ id }) => {
      const result = await WPP.chat.markIsRead(id);
      return { id: ser(result.wid), unread_count: num(result.unreadCount) };
    },
    'chats.archive': async ({ id, archive }) => {
      const result = archive ? await WPP.chat.archive(id) : await WPP.chat.unarchive(id);
      return { id: ser(result.wid), archived: !!result.archive };
    },
    'chats.delete': async ({ id }) => {
      const result = await WPP.chat.delete(id);
      return { id: ser(result.wid), status: num(result.status) };
    },
    // wa-js leaves out an id it could not subscribe to.
    'chats.subscribe': async ({ id }) => ({
      subscribed: (await WPP.contact.subscribePresence([id])).map(ser).includes(id),
    }),
    'chats.state': async ({ id, state, ms }) => {
      if (state === 'typing') await chatState(id, WPP.chat.markIsComposing, ms);
      else if (state === 'recording') await chatState(id, WPP.chat.markIsRecording, ms);
      else await chatState(id, WPP.chat.markIsPaused, 0);
      return { id, state };
    },
  });

  const runOp = async (name, args) => {
    if (!Object.prototype.hasOwnProperty.call(OPS, name)) {
      return { ok: false, code: null, message: 'unknown page operation' };
    }
    try {
      return { ok: true, value: await OPS[name](args || {}) };
    } catch (e) {
      return Object.assign({ ok: false }, errorInfo(e));
    }
  };

  // Whether an id (phone or LID form) is this account's own.
  const isMine = (id) => {
    try {
      const own = [ser(WPP.conn.getMyUserId())];
      try {
        own.push(ser(WPP.conn.getMyUserLid()));
      } catch (e) {
        // no LID known yet
      }
      return own.includes(ser(id));
    } catch (e) {
      return false;
    }
  };

  // ------------------------------------------------------------------ wiring

  // Listeners go on as soon as WPP exists: wa-js wires its own hooks at injection, before
  // `ready`, and a message in between must not be lost.
  let listening = false;
  const listen = () => {
    if (listening) return;
    listening = true;
    WPP.on('conn.auth_code_change', (code) => send('auth_code', authCode(code)));
    WPP.on('conn.qrcode_idle', () => send('qr_idle'));
    // Fires for a new link only, never for a restored session.
    WPP.on('conn.authenticated', () => {
      send('authenticated');
      pushState();
    });
    WPP.on('conn.logout', () => {
      send('logout');
      pushState();
    });
    WPP.on('conn.stream_mode_changed', (mode) => {
      conn.mode = mode;
      pushState();
    });
    WPP.on('conn.stream_info_changed', (info) => {
      conn.info = info;
      pushState();
    });
    WPP.on('conn.online', (online) => {
      conn.online = !!online;
      pushState();
    });
    WPP.on('conn.main_ready', pushState);
    WPP.on('chat.new_message', onMessage);
    // wa-js wires this at loader.full_ready; `action` is `join` for an invite, `leave` for
    // someone removing themselves (the bundle's word; its d.ts says `leaver`).
    WPP.on('group.participant_changed', (event) => {
      const participants = (event.participants || []).map(ser);
      send('group_participants', {
        group_id: ser(event.groupId),
        author: ser(event.author),
        action: event.action || null,
        operation: event.operation || null,
        participants,
        includes_me: participants.some(isMine),
      });
    });
    // A subscribed contact's (or group's) chat state changed.
    WPP.on('chat.presence_change', (event) =>
      send('presence', {
        id: ser(event.id),
        online: !!event.isOnline,
        state: event.state || null,
        is_group: !!event.isGroup,
        participants: (event.participants || []).map((p) => ({ id: ser(p.id), state: p.state || null })),
      }),
    );
    // Fired for ack 1 (SENT) and for receipts (2+); never for 0 or failures.
    WPP.on('chat.msg_ack_change', (event) =>
      send('ack', {
        ack: num(event.ack),
        refs: (event.ids || []).map(bareId),
        ids: (event.ids || []).map(ser),
        chat: ser(event.chat),
      }),
    );
    // message actions: fired for our own edits too; `id` is the original message's key as
    // a string and `msg` the original message, its body now the new text.
    WPP.on('chat.msg_edited', (event) => {
      const m = event.msg || {};
      send('edited', {
        msg_id: ser(event.id),
        ref: bareId(event.id),
        // A media message's body is not its text (as in `message` above): its caption is.
        text: m.type === 'chat' ? m.body || '' : m.caption || null,
        edit_id: ser(m.latestEditMsgKey),
      });
    });
    // refId is the revoked message's key; `id` the revoke's own.
    WPP.on('chat.msg_revoke', (event) =>
      send('revoked', {
        msg_id: ser(event.refId),
        ref: bareId(event.refId),
        from: ser(event.author || event.from),
        type: event.type || null,
      }),
    );
    // message actions: reactionText '' means the reaction was taken back.
    WPP.on('chat.new_reaction', (event) =>
      send('reaction', {
        id: ser(event.id),
        msg_id: ser(event.msgId),
        ref: bareId(event.msgId),
        reaction: typeof event.reactionText === 'string' ? event.reactionText : '',
        sender: ser(event.sender),
        timestamp: num(event.timestamp),
      }),
    );
    // {id, isGroup, isVideo, offerTime, sender: createWid(peerJid), peerJid}; wa-js already
    // dedups by id. The caller may be an @lid id.
    WPP.on('call.incoming_call', (call) =>
      send('call', {
        id: String(call.id),
        from: ser(call.sender) || ser(call.peerJid),
        is_video: !!call.isVideo,
        is_group: !!call.isGroup,
        offer_time: num(call.offerTime),
      }),
    );
    // The d.ts says selectedOptions is number[]; the bundle fills a sparse array indexed
    // by localId with the option objects ({name, localId}). Read both; forEach skips holes.
    // No options: the voter withdrew the vote.
    WPP.on('chat.poll_response', (vote) => {
      const picked = [];
      (Array.isArray(vote.selectedOptions) ? vote.selectedOptions : []).forEach((option, index) => {
        if (typeof option === 'number') picked.push({ index: option, name: null });
        else if (option && typeof option === 'object') {
          picked.push({
            index: typeof option.localId === 'number' ? option.localId : index,
            name: typeof option.name === 'string' ? option.name : null,
          });
        }
      });
      send('poll_vote', {
        id: ser(vote.msgId),
        ref: bareId(vote.msgId),
        chat: ser(vote.chatId),
        voter: ser(vote.sender),
        options: picked,
        timestamp: num(vote.timestamp),
      });
    });
  };

  // wa-js announces the stream state at injection, before `ready`: read it through the
  // getters once ready, and say so.
  let announced = false;
  const announce = () => {
    if (announced) return;
    announced = true;
    snapshot().then(
      (state) => {
        lastState = JSON.stringify(state.conn);
        send('ready', state);
      },
      (e) => send('bridge_error', { where: 'snapshot', error: String(e) }),
    );
  };

  const snapshot = async () => {
    let code = null;
    try {
      if (!WPP.conn.isAuthenticated()) code = authCode(await WPP.conn.getAuthCode());
    } catch (e) {
      code = null;
    }
    // Read after the wait, so the state is never older than a `state` already sent.
    readConn();
    return { conn: connState(), auth_code: code };
  };

  // WPP.loader.onReady only subscribes: if `ready` already fired it never runs, so look
  // at the live getter first.
  const whenReady = () => {
    listen();
    if (WPP.isReady) announce();
    else WPP.loader.onReady(announce);
  };

  const handoff = (options) => {
    const ms = options && options.handoffMs;
    return typeof ms === 'number' && ms > 0 ? ms : DEFAULT_HANDOFF_MS;
  };
  const wppOptions = (options, key) => {
    const copy = Object.assign({}, options || {});
    delete copy.handoffMs;
    copy.messageId = key;
    return copy;
  };

  window.__waSidecar = {
    snapshot,
    probe: () => ({
      wpp: !!window.WPP,
      injected: !!(window.WPP && window.WPP.isInjected),
      ready: !!(window.WPP && window.WPP.isReady),
      error: window.__waSidecarLoadError || null,
    }),
    authCode: async () => authCode(await WPP.conn.getAuthCode()),
    refreshQR: async () => {
      await WPP.conn.refreshQR();
      return true;
    },
    pairingCode: (phone) => WPP.conn.genLinkDeviceCodeForPhoneNumber(phone),
    logout: () => WPP.conn.logout(),
    sendText: (to, text, options) =>
      sendWith(to, handoff(options), (chat, key) =>
        WPP.chat.sendTextMessage(chat, text, wppOptions(options, key)),
      ),
    sendFile: (to, dataUrl, options) =>
      sendWith(to, handoff(options), (chat, key) =>
        WPP.chat.sendFileMessage(chat, dataUrl, wppOptions(options, key)),
      ),
    sendLocation: (to, options) =>
      sendWith(to, handoff(options), (chat, key) =>
        WPP.chat.sendLocationMessage(chat, wppOptions(options, key)),
      ),
    // selectableCount 0 lets a voter pick any number of options (wa-js's default).
    sendPoll: (to, name, choices, options) =>
      sendWith(to, handoff(options), (chat, key) =>
        WPP.chat.sendCreatePollMessage(chat, name, choices, wppOptions(options, key)),
      ),
    // A file past the cap stays in the page: only its size crosses, never its base64.
    downloadMedia: async (id, maxBytes) => {
      const blob = await WPP.chat.downloadMedia(id);
      if (maxBytes != null && blob.size > maxBytes) return { tooLarge: blob.size };
      return { data: await blobToBase64(blob) };
    },
    op: runOp,
  };

  const boot = () => {
    // Without WPP (no bundle configured) nothing happens: Python's load deadline reports it.
    if (window.WPP) whenReady();
  };
  // A page may replace window.WPP from its own <head> script, so look once the document is
  // parsed, not now.
  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', boot, { once: true });
  } else {
    boot();
  }
})();
