/*
 * The my.* shim: the JSAPIs a mini program calls, for a plain web page talking to the sandbox wallet.
 *
 *   <script src="/static/demo/my.js" data-app-id="demo-coffee-app" data-wallet="/sandbox"></script>
 *
 * my.request, my.getAuthCode, my.tradePay, my.getSiteInfo, my.getSystemInfo and my.alert take the options
 * and give the results the super app's do (shared/spec/protocol.md §9): each accepts success / fail /
 * complete callbacks, and without any callback returns a Promise instead. docs/my-shim.md is the manual.
 */
(function () {
  "use strict";

  var script = document.currentScript;
  var data = (script && script.dataset) || {};
  var settings = {
    appId: data.appId || "",
    wallet: (data.wallet || "/sandbox").replace(/\/$/, ""),
    user: data.user || "alice",
    siteName: data.siteName || "SANDBOX",
    container: data.container || "",
    tradePayIn: data.tradePayIn || "frame", // "frame" (an overlay in the page) or "window" (a pop-up)
    resultDelay: Number(data.resultDelay || 600), // ms the wallet's result page stays up
  };

  // my.request's error codes (the super app's numbering).
  var REQUEST_ERRORS = {
    2: "invalid parameter",
    12: "network error",
    13: "timeout",
    14: "decoding failed",
    19: "HTTP error",
  };

  function failure(error, message, extra) {
    var result = { error: error, errorMessage: message || REQUEST_ERRORS[error] || "failed" };
    return Object.assign(result, extra || {});
  }

  /** Runs ``work`` (a Promise factory) the way every my.* API answers: callbacks, or a Promise. */
  function answer(options, work) {
    options = options || {};
    var promise;
    try {
      promise = Promise.resolve(work(options));
    } catch (error) {
      promise = Promise.reject(error);
    }
    var hasCallbacks = ["success", "fail", "complete"].some(function (name) {
      return typeof options[name] === "function";
    });
    if (!hasCallbacks) return promise;
    promise.then(
      function (result) {
        if (options.success) options.success(result);
        if (options.complete) options.complete(result);
      },
      function (error) {
        if (options.fail) options.fail(error);
        if (options.complete) options.complete(error);
      }
    );
    return undefined;
  }

  function headerObject(headers) {
    var out = {};
    headers.forEach(function (value, name) {
      out[name] = value;
    });
    return out;
  }

  function withQuery(url, data) {
    if (!data || typeof data !== "object") return url;
    var query = new URLSearchParams(data).toString();
    if (!query) return url;
    return url + (url.indexOf("?") === -1 ? "?" : "&") + query;
  }

  function request(options) {
    if (!options.url || typeof options.url !== "string") throw failure(2, "url is required");
    var method = (options.method || "GET").toUpperCase();
    var headers = Object.assign({ "content-type": "application/json" }, options.headers || {});
    var contentType = "";
    Object.keys(headers).forEach(function (name) {
      if (name.toLowerCase() === "content-type") contentType = String(headers[name]);
    });
    var url = options.url;
    var body;
    if (method === "GET" || method === "HEAD") {
      url = withQuery(url, options.data);
    } else if (typeof options.data === "string" || options.data === undefined) {
      body = options.data;
    } else if (contentType.indexOf("application/json") === 0) {
      body = JSON.stringify(options.data);
    } else {
      body = new URLSearchParams(options.data).toString();
    }
    var controller = new AbortController();
    var timedOut = false;
    var timer = setTimeout(function () {
      timedOut = true;
      controller.abort();
    }, options.timeout || 30000);
    var dataType = options.dataType || "json";
    return fetch(url, { method: method, headers: headers, body: body, signal: controller.signal })
      .catch(function () {
        throw failure(timedOut ? 13 : 12);
      })
      .then(function (response) {
        return response.text().then(function (text) {
          clearTimeout(timer);
          var parsed = text;
          if (dataType === "json" && text !== "") {
            try {
              parsed = JSON.parse(text);
            } catch (error) {
              if (response.ok) throw failure(14, "the answer is not JSON");
            }
          }
          var result = { data: parsed, status: response.status, headers: headerObject(response.headers) };
          if (!response.ok) throw failure(19, "HTTP error " + response.status, result);
          return result;
        });
      });
  }

  function getAuthCode(options) {
    var scopes = options.scopes || ["auth_base"];
    if (typeof scopes === "string") scopes = [scopes];
    if (!settings.appId) throw failure(2, "the shim has no appId: set data-app-id or my.configure({appId})");
    var url = withQuery(settings.wallet + "/authcode", {
      appId: settings.appId,
      scopes: scopes.join(","),
      user: settings.user,
    });
    return fetch(url, { credentials: "same-origin" })
      .catch(function () {
        throw failure(12);
      })
      .then(function (response) {
        return response.json().then(function (body) {
          if (!response.ok) {
            var refused = {};
            scopes.forEach(function (scope) {
              refused[scope] = body.error || "10001";
            });
            throw failure(11, body.errorMessage || "the wallet refused the auth code", { authErrorScopes: refused });
          }
          return { authCode: body.authCode, authSuccessScopes: body.authSuccessScopes };
        });
      });
  }

  /** The cashier for what the platform returned in ``trade_pay``: its paymentUrl, or the orderStr page. */
  function cashierUrl(options) {
    var given = ["paymentUrl", "orderStr", "tradeNO"].filter(function (name) {
      return options[name];
    });
    if (given.length !== 1) throw failure(2, "pass exactly one of paymentUrl, orderStr and tradeNO");
    if (options.tradeNO) throw failure(2, "the sandbox wallet takes paymentUrl or orderStr, not tradeNO");
    if (options.paymentUrl) return options.paymentUrl;
    return settings.wallet + "/tradepay?orderStr=" + encodeURIComponent(options.orderStr);
  }

  function overlay(className) {
    var layer = document.createElement("div");
    layer.className = "my-shim-layer " + className;
    layer.setAttribute(
      "style",
      "position:absolute;inset:0;z-index:1000;display:flex;flex-direction:column;background:rgba(0,0,0,.45)"
    );
    var host = (settings.container && document.querySelector(settings.container)) || document.body;
    if (host === document.body) layer.style.position = "fixed";
    host.appendChild(layer);
    return layer;
  }

  function tradePay(options) {
    var url = cashierUrl(options);
    var walletOrigin = new URL(url, window.location.href).origin;
    return new Promise(function (resolve) {
      var surface;
      var layer;
      var done = false;
      function finish(resultCode, delay) {
        if (done) return;
        done = true;
        window.removeEventListener("message", onMessage);
        setTimeout(function () {
          if (layer) layer.remove();
          if (surface && surface.close) surface.close();
          resolve({ resultCode: resultCode });
        }, delay);
      }
      function onMessage(event) {
        var message = event.data || {};
        if (event.origin !== walletOrigin || message.type !== "tradePay.result") return;
        var fromCashier = settings.tradePayIn === "window" ? event.source === surface : event.source === surface.contentWindow;
        if (fromCashier) finish(String(message.resultCode), settings.resultDelay);
      }
      window.addEventListener("message", onMessage);
      if (settings.tradePayIn === "window") {
        surface = window.open(url, "my-tradepay", "popup,width=420,height=760");
        if (!surface) return finish("6002", 0); // a blocked pop-up: nothing reached the wallet
        var watch = setInterval(function () {
          if (done) return clearInterval(watch);
          if (surface.closed) {
            clearInterval(watch);
            finish("6001", 0); // closed by the user without an answer: cancelled
          }
        }, 300);
        return;
      }
      layer = overlay("my-shim-cashier");
      var bar = document.createElement("div");
      bar.setAttribute(
        "style",
        "display:flex;justify-content:flex-end;padding:6px 8px;background:#1677ff;color:#fff;font:14px sans-serif"
      );
      var close = document.createElement("button");
      close.type = "button";
      close.className = "my-shim-close";
      close.textContent = "\u2715 Close";
      close.setAttribute("aria-label", "Close the cashier");
      close.setAttribute("style", "background:none;border:0;color:inherit;font:inherit;cursor:pointer");
      close.addEventListener("click", function () {
        finish("6001", 0); // the user backed out of the cashier
      });
      bar.appendChild(close);
      surface = document.createElement("iframe");
      surface.className = "my-shim-frame";
      surface.title = "Sandbox wallet cashier";
      surface.src = url;
      surface.setAttribute("style", "flex:1;border:0;width:100%;background:#fff");
      layer.appendChild(bar);
      layer.appendChild(surface);
    });
  }

  function getSystemInfo() {
    var agent = navigator.userAgent || "";
    return {
      model: "Sandbox phone",
      pixelRatio: window.devicePixelRatio || 1,
      windowWidth: window.innerWidth,
      windowHeight: window.innerHeight,
      screenWidth: window.screen.width,
      screenHeight: window.screen.height,
      language: navigator.language || "en",
      version: "1.0.0",
      storage: "",
      currentBattery: "100%",
      system: agent,
      platform: /iPhone|iPad|iPod/.test(agent) ? "iOS" : "Android",
      titleBarHeight: 44,
      statusBarHeight: 20,
      brand: "Sandbox",
      fontSizeSetting: 16,
      app: "SandboxWallet",
    };
  }

  function alert(options) {
    return new Promise(function (resolve) {
      var layer = overlay("my-shim-alert");
      layer.style.alignItems = "center";
      layer.style.justifyContent = "center";
      var box = document.createElement("div");
      box.setAttribute("role", "alertdialog");
      box.setAttribute(
        "style",
        "background:#fff;border-radius:12px;padding:20px;max-width:80%;font:15px sans-serif;text-align:center"
      );
      if (options.title) {
        var title = document.createElement("p");
        title.textContent = options.title;
        title.style.fontWeight = "600";
        box.appendChild(title);
      }
      var content = document.createElement("p");
      content.textContent = options.content || "";
      box.appendChild(content);
      var button = document.createElement("button");
      button.type = "button";
      button.className = "my-shim-alert-ok";
      button.textContent = options.buttonText || "OK";
      button.addEventListener("click", function () {
        layer.remove();
        resolve({});
      });
      box.appendChild(button);
      layer.appendChild(box);
    });
  }

  window.my = {
    /** Changes appId, wallet, user, siteName, container, tradePayIn or resultDelay after loading. */
    configure: function (changes) {
      Object.assign(settings, changes || {});
      settings.wallet = settings.wallet.replace(/\/$/, "");
      return Object.assign({}, settings);
    },
    request: function (options) {
      return answer(options, request);
    },
    getAuthCode: function (options) {
      return answer(options, getAuthCode);
    },
    tradePay: function (options) {
      return answer(options, tradePay);
    },
    getSiteInfo: function (options) {
      return answer(options, function () {
        return { siteName: settings.siteName };
      });
    },
    getSystemInfo: function (options) {
      return answer(options, getSystemInfo);
    },
    alert: function (options) {
      return answer(options, alert);
    },
  };
})();
