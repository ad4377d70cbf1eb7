/*
 * A demo mini program: a shop (and, with pre-authorization, a rental counter) that talks to the platform
 * only as a real mini program would, through the my.* JSAPIs (my.js): my.getAuthCode and POST
 * /api/v1/sessions for a user session, my.request for the public API, my.tradePay for the cashier.
 */
(function () {
  "use strict";

  var app = document.getElementById("app");
  var config = app.dataset;
  var API = config.api.replace(/\/$/, "");
  var DEPOSIT_UNITS = 3; // a rental freezes three units (hours, days) and charges what was used
  var FINAL = ["paid", "failed", "closed", "partially_refunded", "refunded", "authorized"];
  var POLL_EVERY_MS = 1000;
  var POLL_TIMES = 30;
  var sessionKey = "demo-session:" + config.appId;

  function element(tag, attributes, children) {
    var node = document.createElement(tag);
    Object.keys(attributes || {}).forEach(function (name) {
      if (name === "text") node.textContent = attributes[name];
      else if (name === "onclick") node.addEventListener("click", attributes[name]);
      else node.setAttribute(name, attributes[name]);
    });
    (children || []).forEach(function (child) {
      if (child) node.appendChild(child);
    });
    return node;
  }

  function show() {
    var screen = document.getElementById("screen");
    screen.replaceChildren.apply(screen, Array.prototype.slice.call(arguments));
    screen.scrollTop = 0;
  }

  /** Minor units as the currency writes them (ISO 4217 digits from Intl), without floating point. */
  function money(minor, currency) {
    var digits = new Intl.NumberFormat("en", { style: "currency", currency: currency }).resolvedOptions()
      .maximumFractionDigits;
    var text = String(Math.abs(minor)).padStart(digits + 1, "0");
    var major = digits ? text.slice(0, -digits) + "." + text.slice(-digits) : text;
    return (minor < 0 ? "-" : "") + major + " " + currency;
  }

  function problem(error) {
    var body = (error && error.data) || {};
    var detail = body.error || {};
    return detail.message ? detail.message + " (" + detail.code + ")" : (error && error.errorMessage) || String(error);
  }

  function sleep(ms) {
    return new Promise(function (resolve) {
      setTimeout(resolve, ms);
    });
  }

  // --- the user session: my.getAuthCode, then POST /api/v1/sessions -------------------------------

  var pendingSession = null; // one sign-in at a time, however many requests wait for it

  function session() {
    var kept = JSON.parse(sessionStorage.getItem(sessionKey) || "null");
    if (kept && Date.parse(kept.expires_at) > Date.now() + 60000) return Promise.resolve(kept.token);
    if (pendingSession) return pendingSession;
    pendingSession = my
      .getAuthCode({ scopes: ["auth_base"] })
      .then(function (granted) {
        return my.request({
          url: API + "/sessions",
          method: "POST",
          data: { app_id: config.appId, auth_code: granted.authCode },
        });
      })
      .then(function (answer) {
        sessionStorage.setItem(sessionKey, JSON.stringify(answer.data));
        return answer.data.token;
      })
      .finally(function () {
        pendingSession = null;
      });
    return pendingSession;
  }

  function api(method, path, data, retried) {
    return session().then(function (token) {
      var url = path.indexOf("/") === 0 ? path : API + "/" + path;
      return my
        .request({ url: url, method: method, data: data, headers: { Authorization: "Bearer " + token } })
        .then(
          function (answer) {
            return answer.data;
          },
          function (error) {
            if (error.status === 401 && !retried) {
              sessionStorage.removeItem(sessionKey); // expired or revoked: start a new session once
              return api(method, path, data, true);
            }
            throw error;
          }
        );
    });
  }

  // --- the shop ------------------------------------------------------------------------------------

  function catalogue() {
    show(element("p", { class: "muted", text: "Loading the menu\u2026" }));
    Promise.all([api("GET", "products"), api("GET", "orders"), config.preauth ? api("GET", "preauthorizations") : null])
      .then(function (answers) {
        var products = answers[0].results;
        var list = element("ul", { class: "products" });
        products.forEach(function (product) {
          var buttons = [
            element("button", {
              class: "buy",
              "data-sku": product.sku,
              text: "Buy " + money(product.price.amount, product.price.currency),
              onclick: function () {
                buy(product);
              },
            }),
          ];
          if (config.preauth) {
            buttons.push(
              element("button", {
                class: "rent secondary",
                "data-sku": product.sku,
                text: "Rent (deposit " + money(product.price.amount * DEPOSIT_UNITS, product.price.currency) + ")",
                onclick: function () {
                  rent(product);
                },
              })
            );
          }
          list.appendChild(
            element("li", { class: "product" }, [
              element("span", { class: "name", text: product.name }),
              element("span", { class: "actions" }, buttons),
            ])
          );
        });
        var parts = [element("h2", { text: "Menu" }), list];
        var rentals = answers[2] ? answers[2].results.filter(isRunning) : [];
        if (rentals.length) {
          parts.push(element("h2", { text: "Running rentals" }));
          rentals.forEach(function (rental) {
            parts.push(rentalCard(rental));
          });
        }
        var orders = answers[1].results.slice(0, 5);
        if (orders.length) {
          parts.push(element("h2", { text: "Your orders" }));
          parts.push(
            element(
              "ul",
              { class: "orders" },
              orders.map(function (order) {
                return element("li", {
                  text: order.description + " \u00b7 " + money(order.amount, order.currency) + " \u00b7 " + order.status,
                });
              })
            )
          );
        }
        show.apply(null, parts);
      })
      .catch(function (error) {
        show(
          element("p", { class: "error", role: "alert", text: problem(error) }),
          element("button", { text: "Try again", onclick: catalogue })
        );
      });
  }

  function buy(product) {
    show(element("p", { class: "muted", text: "Creating your order\u2026" }));
    api("POST", "orders", { items: [{ sku: product.sku, quantity: 1 }], description: product.name })
      .then(pay)
      .catch(failed);
  }

  function pay(order) {
    return my.tradePay(order.trade_pay).then(function (outcome) {
      return api("POST", "orders/" + order.id + "/client-result", { result_code: outcome.resultCode }).then(
        function (reported) {
          return result(reported, outcome.resultCode);
        }
      );
    });
  }

  /** The result page: what my.tradePay said, then the order as the platform settles it. */
  function result(order, resultCode) {
    var status = element("strong", { id: "result-status", "data-status": order.status, text: label(order.status) });
    var note = element("p", { class: "muted", id: "result-note" });
    var actions = element("div", { class: "actions" });
    show(
      element("h2", { text: order.description }),
      element("p", { class: "amount", text: money(order.amount, order.currency) }),
      element("p", {}, [document.createTextNode("Order "), status]),
      element("p", { class: "muted", text: "my.tradePay resultCode " + resultCode + " \u00b7 " + order.id }),
      note,
      actions
    );
    function settle(current) {
      status.textContent = label(current.status);
      status.dataset.status = current.status;
      actions.replaceChildren(element("button", { class: "secondary", text: "Back to the shop", onclick: catalogue }));
      if (current.status === "pending" && current.trade_pay && Object.keys(current.trade_pay).length) {
        note.textContent =
          resultCode === "6001"
            ? "You cancelled at the cashier; nothing was charged. The order stays open until it expires."
            : "The order is still open.";
        actions.prepend(
          element("button", {
            id: "pay-again",
            text: "Pay again",
            onclick: function () {
              pay(current).catch(failed);
            },
          })
        );
      } else if (FINAL.indexOf(current.status) !== -1) {
        note.textContent = current.status === "paid" ? "Thank you! The merchant has your payment." : "";
      }
    }
    if (resultCode === "6001" || FINAL.indexOf(order.status) !== -1) return settle(order);
    note.textContent = "Waiting for the super app to confirm\u2026";
    return poll("orders/" + order.id, function (current) {
      return FINAL.indexOf(current.status) !== -1;
    }).then(settle);
  }

  /** Asks the platform (which asks the super app) until ``done`` or about 30 s have passed. */
  function poll(path, done) {
    var tries = 0;
    function again() {
      return api("GET", path + "?refresh=true").then(function (current) {
        tries += 1;
        if (done(current) || tries >= POLL_TIMES) return current;
        return sleep(POLL_EVERY_MS).then(again);
      });
    }
    return again();
  }

  function label(status) {
    return status.charAt(0).toUpperCase() + status.slice(1).replace(/_/g, " ");
  }

  // --- rentals (pre-authorization) -------------------------------------------------------------------

  function isRunning(rental) {
    return rental.status === "authorized" || rental.status === "partially_captured";
  }

  function rent(product) {
    show(element("p", { class: "muted", text: "Asking for a deposit\u2026" }));
    api("POST", "preauthorizations", {
      items: [{ sku: product.sku, quantity: DEPOSIT_UNITS }],
      description: "Rental: " + product.name,
    })
      .then(function (rental) {
        return my.tradePay(rental.trade_pay).then(function (outcome) {
          return api("POST", "orders/" + rental.order + "/client-result", { result_code: outcome.resultCode }).then(
            function () {
              if (outcome.resultCode === "6001") return rental;
              return poll("preauthorizations/" + rental.id, function (current) {
                return current.status !== "pending";
              });
            }
          );
        });
      })
      .then(function (rental) {
        show(element("h2", { text: "Your rental" }), rentalCard(rental));
      })
      .catch(failed);
  }

  function rentalCard(rental) {
    var running = isRunning(rental);
    var facts = [
      element("p", { class: "name", text: rental.description }),
      element("p", {}, [
        document.createTextNode("Rental "),
        element("strong", { class: "rental-status", "data-status": rental.status, text: label(rental.status) }),
      ]),
      element("p", { class: "muted", text: "Deposit " + money(rental.amount, rental.currency) }),
    ];
    if (rental.captured_amount || rental.released_amount) {
      facts.push(
        element("p", {
          class: "rental-charged",
          text:
            "Charged " +
            money(rental.captured_amount, rental.currency) +
            ", released " +
            money(rental.released_amount, rental.currency),
        })
      );
    }
    if (running) {
      facts.push(
        element("button", {
          class: "stop-rental",
          text: "Stop rental",
          onclick: function () {
            stop(rental);
          },
        })
      );
    } else {
      facts.push(element("button", { class: "secondary", text: "Back to the shop", onclick: catalogue }));
    }
    return element("div", { class: "rental card", "data-id": rental.id }, facts);
  }

  /** The merchant's server prices the ride and captures it; a mini program may not capture itself. */
  function stop(rental) {
    show(element("p", { class: "muted", text: "Stopping your rental\u2026" }));
    api("POST", config.server + "rentals/" + rental.id + "/stop")
      .then(function (done) {
        show(element("h2", { text: "Rental finished" }), rentalCard(done));
      })
      .catch(failed);
  }

  function failed(error) {
    show(
      element("p", { class: "error", role: "alert", text: problem(error) }),
      element("button", { text: "Back to the shop", onclick: catalogue })
    );
  }

  catalogue();
})();
