// An inspection run's page: poll its progress every 2 s while it is queued or running, reload when it ends.
(function () {
  var box = document.getElementById("inspection-run");
  if (!box) { return; }
  var bar = document.getElementById("run-bar");
  bar.style.width = bar.getAttribute("data-share") + "%";  // set from script: the CSP allows no style attribute
  if (["queued", "running"].indexOf(box.getAttribute("data-state")) < 0) { return; }
  var number = function (value) { return value.toLocaleString("en-US"); };
  function poll() {
    fetch(box.getAttribute("data-status-url"), {credentials: "same-origin"})
      .then(function (response) { return response.json(); })
      .then(function (status) {
        if (["queued", "running"].indexOf(status.state) < 0) { window.location.reload(); return; }
        document.getElementById("run-checked").textContent = number(status.checked);
        document.getElementById("run-total").textContent = number(status.total);
        document.getElementById("run-failing").textContent = number(status.failing);
        document.querySelector("#run-state .badge").textContent = status.state_label;
        document.getElementById("run-started").textContent = status.started_at;
        var share = status.total ? Math.round(100 * status.checked / status.total) : 0;
        bar.style.width = share + "%";
        bar.setAttribute("aria-valuenow", share);
        window.setTimeout(poll, 2000);
      })
      .catch(function () { window.setTimeout(poll, 4000); });
  }
  window.setTimeout(poll, 2000);
})();
