// Chronicle's GraphiQL page (development only): the editor over /graphql, subscriptions over
// the same path's WebSocket. Everything it loads is served by the binary.
"use strict";
(function () {
  var scheme = location.protocol === "https:" ? "wss:" : "ws:";
  var fetcher = GraphiQL.createFetcher({
    url: location.origin + "/graphql",
    subscriptionUrl: scheme + "//" + location.host + "/graphql",
  });
  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(React.createElement(GraphiQL, {
    fetcher: fetcher,
    defaultEditorToolsVisibility: true,
    isHeadersEditorEnabled: true,
  }));
})();
