// The Chronicle console's small conveniences; every page works without them.
"use strict";

// Times are written in UTC; show them in the reader's time zone.
document.querySelectorAll("time[datetime]").forEach(function (el) {
  var at = new Date(el.getAttribute("datetime"));
  if (!isNaN(at.getTime())) {
    el.title = el.textContent;
    el.textContent = at.toLocaleString();
  }
});

// The log's live tail: the `events` subscription over the console's own WebSocket (signed in
// by its cookie), appending each event as it commits and, after any disconnection, resuming
// after the last one shown.
(function () {
  var rows = document.getElementById("log-rows");
  if (!rows || rows.dataset.live !== "true") {
    return;
  }
  var status = document.getElementById("live-status");
  var after = rows.dataset.from || null;
  var filter = {};
  if (rows.dataset.workspace) {
    filter.workspaceId = rows.dataset.workspace;
  }
  if (rows.dataset.types) {
    filter.eventTypes = rows.dataset.types.split(",");
  }
  var query = "subscription ConsoleTail($filter: EventsFilter, $from: String) {" +
    " events(filter: $filter, fromPosition: $from) {" +
    " position eventType streamType streamId workspaceId recordedAt payload } }";
  var retry = 500;

  function say(text) {
    if (status) {
      status.textContent = text;
    }
  }

  function cell(row, text, code) {
    var td = document.createElement("td");
    if (code) {
      var c = document.createElement("code");
      c.textContent = text;
      td.appendChild(c);
    } else {
      td.textContent = text;
    }
    row.appendChild(td);
    return td;
  }

  function append(event) {
    var row = document.createElement("tr");
    row.className = "live";
    cell(row, event.position, true);
    cell(row, new Date(event.recordedAt).toLocaleString());
    cell(row, event.eventType);
    var stream = cell(row, event.streamType + " ");
    var id = document.createElement("code");
    id.textContent = event.streamId;
    stream.appendChild(id);
    var payload = JSON.stringify(event.payload);
    cell(row, payload.length > 300 ? payload.slice(0, 300) + "…" : payload, true);
    rows.appendChild(row);
    after = event.position;
  }

  function connect() {
    var scheme = location.protocol === "https:" ? "wss:" : "ws:";
    var socket = new WebSocket(scheme + "//" + location.host + "/console/live", "graphql-transport-ws");
    socket.onopen = function () {
      socket.send(JSON.stringify({ type: "connection_init", payload: {} }));
    };
    socket.onmessage = function (message) {
      var frame = JSON.parse(message.data);
      if (frame.type === "connection_ack") {
        retry = 500;
        say("Live: new events appear below as they are recorded.");
        socket.send(JSON.stringify({
          id: "tail", type: "subscribe",
          payload: { query: query, variables: { filter: filter, from: after } }
        }));
      } else if (frame.type === "next" && frame.payload && frame.payload.data) {
        append(frame.payload.data.events);
      } else if (frame.type === "next" || frame.type === "error") {
        say("The live tail stopped: " + JSON.stringify(frame.payload));
      } else if (frame.type === "ping") {
        socket.send(JSON.stringify({ type: "pong" }));
      }
    };
    socket.onclose = function (close) {
      if (close.code === 4403) {
        say("Signed out: reload the page to sign in again.");
        return;
      }
      say("Reconnecting…");
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 10000);
    };
  }

  connect();
})();
