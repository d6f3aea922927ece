// Read a redemption QR code with the camera, fill the code field and submit.
// The QR reader (jsQR, 250 KB) is fetched only once the camera is on. Without a camera,
// or without permission, the button says so and the code is typed.
(function () {
  "use strict";
  var button = document.getElementById("scan");
  var video = document.getElementById("scan-video");
  var status = document.getElementById("scan-status");
  if (!button || !video || !status) { return; }
  var input = document.getElementById(button.getAttribute("data-scan-target"));
  var form = input && input.form;
  var canvas = document.createElement("canvas");
  var context = canvas.getContext("2d", { willReadFrequently: true });
  var stream = null;
  button.hidden = false;

  function say(which) {
    status.textContent = button.getAttribute(which) || "";
    if (input && !input.disabled) { input.focus(); }
  }

  function stop() {
    if (stream) { stream.getTracks().forEach(function (t) { t.stop(); }); }
    stream = null;
    video.hidden = true;
  }

  function loadReader() {
    if (window.jsQR) { return Promise.resolve(); }
    return new Promise(function (resolve, reject) {
      var script = document.createElement("script");
      script.src = button.getAttribute("data-scanner");
      script.onload = function () { return window.jsQR ? resolve() : reject(new Error("jsQR")); };
      script.onerror = function () { reject(new Error("jsQR")); };
      document.head.appendChild(script);
    });
  }

  function tick() {
    if (!stream) { return; }
    if (video.readyState === video.HAVE_ENOUGH_DATA) {
      canvas.width = video.videoWidth;
      canvas.height = video.videoHeight;
      context.drawImage(video, 0, 0, canvas.width, canvas.height);
      var image = context.getImageData(0, 0, canvas.width, canvas.height);
      var found = window.jsQR(image.data, image.width, image.height,
                              { inversionAttempts: "dontInvert" });
      if (found && found.data) {
        input.value = found.data.replace(/^.*[:=]/, "");
        stop();
        form.submit();
        return;
      }
    }
    window.requestAnimationFrame(tick);
  }

  button.addEventListener("click", function () {
    status.textContent = "";
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      say("data-no-camera");
      return;
    }
    navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } })
      .then(function (s) {
        stream = s;
        return loadReader();
      })
      .then(function () {
        video.srcObject = stream;
        video.hidden = false;
        return video.play();
      })
      .then(function () { window.requestAnimationFrame(tick); })
      .catch(function (error) {
        stop();
        var name = error && error.name;
        if (name === "NotAllowedError" || name === "SecurityError") {
          say("data-denied");
        } else if (name === "NotFoundError" || name === "OverconstrainedError" ||
                   name === "NotReadableError") {
          say("data-no-camera");
        } else {
          say("data-failed");
        }
      });
  });
})();
