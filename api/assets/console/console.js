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
