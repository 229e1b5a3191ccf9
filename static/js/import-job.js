// The import job's page: poll its status every second while it runs, reload when it ends.
(function () {
  var box = document.getElementById("import-job");
  if (!box || ["queued", "running"].indexOf(box.getAttribute("data-state")) < 0) { return; }
  var bar = document.getElementById("import-bar");
  bar.style.width = bar.getAttribute("data-share") + "%";  // set from script: the CSP allows no style attribute
  function poll() {
    fetch(box.getAttribute("data-status-url"), {credentials: "same-origin"})
      .then(function (response) { return response.json(); })
      .then(function (status) {
        if (status.state === "done" || status.state === "failed") { window.location.reload(); return; }
        document.getElementById("import-phase").textContent = status.phase;
        document.getElementById("import-count").textContent = status.done_rows;
        document.getElementById("import-total").textContent = status.total_rows;
        document.getElementById("import-of").hidden = !status.total_rows;
        var share = status.total_rows ? Math.round(100 * status.done_rows / status.total_rows) : 0;
        bar.style.width = share + "%";
        window.setTimeout(poll, 1000);
      })
      .catch(function () { window.setTimeout(poll, 3000); });
  }
  window.setTimeout(poll, 1000);
})();
