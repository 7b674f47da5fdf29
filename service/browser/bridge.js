// wa-sidecar page bridge: the only code that knows WhatsApp Web internals.
//
// Injected as an init script before navigation. It speaks the WPP API of @wppconnect/wa-js:
// when the page has no WPP (the real web.whatsapp.com) it asks Python to evaluate the pinned
// wa-js bundle, then subscribes to WPP events and forwards them, serialised to plain JSON,
// through one exposed binding. Python calls back through window.__waSidecar.
(() => {
  if (window.top !== window || window.__waSidecar) return;
  const BINDING = '__waSidecarEmit';

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

  const message = (m) => ({
    id: ser(m.id),
    from_me: !!(m.id && m.id.fromMe),
    from: ser(m.from),
    to: ser(m.to),
    author: ser(m.author),
    type: m.type,
    body: m.type === 'chat' ? m.body || '' : null,
    caption: m.caption || null,
    filename: m.filename || null,
    mimetype: m.mimetype || null,
    size: num(m.size),
    timestamp: num(m.t),
    notify_name: m.notifyName || null,
    latitude: num(m.lat),
    longitude: num(m.lng),
    location_name: m.type === 'location' ? m.loc || m.name || null : null,
    quoted_id: m.quotedStanzaID || null,
  });

  const sent = (result) => ({ id: ser(result.id), ack: num(result.ack) });

  // Keep a WPPError's code in the message, the only part that survives the trip to Python.
  const coded = (promise) =>
    promise.catch((e) => {
      const code = e && e.code ? `[${e.code}] ` : '';
      throw new Error(code + ((e && e.message) || String(e)));
    });

  const snapshot = async () => {
    const authenticated = !!WPP.conn.isAuthenticated();
    const mainReady = !!WPP.conn.isMainReady();
    let code = null;
    if (!authenticated) {
      try {
        code = authCode(await WPP.conn.getAuthCode());
      } catch (e) {
        code = null;
      }
    }
    return {
      authenticated,
      main_ready: mainReady,
      online: !!WPP.conn.isOnline(),
      auth_code: code,
      me: mainReady ? me() : null,
    };
  };

  let attached = false;
  const attach = () => {
    if (attached) return;
    attached = true;
    WPP.on('conn.auth_code_change', (code) => send('auth_code', authCode(code)));
    WPP.on('conn.qrcode_idle', () => send('qr_idle'));
    WPP.on('conn.authenticated', () => send('authenticated'));
    WPP.on('conn.main_ready', () => send('main_ready', { me: me() }));
    WPP.on('conn.logout', () => send('logout'));
    WPP.on('conn.online', (online) => send('online', { online: !!online }));
    WPP.on('chat.new_message', (msg) => {
      try {
        send('message', message(msg));
      } catch (e) {
        send('bridge_error', { where: 'chat.new_message', error: String(e) });
      }
    });
    WPP.on('chat.msg_ack_change', (event) =>
      send('ack', { ack: event.ack, ids: (event.ids || []).map(ser), chat: ser(event.chat) }),
    );
    snapshot().then(
      (state) => send('ready', state),
      (e) => send('bridge_error', { where: 'snapshot', error: String(e) }),
    );
  };

  const whenReady = () => {
    if (WPP.isReady) attach();
    else WPP.loader.onReady(attach);
  };

  const blobToBase64 = (blob) =>
    new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(String(reader.result).split(',', 2)[1] || '');
      reader.onerror = () => reject(reader.error);
      reader.readAsDataURL(blob);
    });

  window.__waSidecar = {
    boot: whenReady,
    snapshot,
    authCode: async () => authCode(await WPP.conn.getAuthCode()),
    refreshQR: async () => {
      await WPP.conn.refreshQR();
      return true;
    },
    pairingCode: (phone) => WPP.conn.genLinkDeviceCodeForPhoneNumber(phone),
    logout: () => WPP.conn.logout(),
    sendText: async (to, text, options) =>
      sent(await coded(WPP.chat.sendTextMessage(to, text, options || {}))),
    sendFile: async (to, dataUrl, options) =>
      sent(await coded(WPP.chat.sendFileMessage(to, dataUrl, options))),
    sendLocation: async (to, options) =>
      sent(await coded(WPP.chat.sendLocationMessage(to, options))),
    downloadMedia: async (id) => blobToBase64(await WPP.chat.downloadMedia(id)),
  };

  const boot = () => {
    if (window.WPP) whenReady();
    else send('need_wa_js');
  };
  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', boot, { once: true });
  } else {
    boot();
  }
})();
