// Read a redemption QR code with the phone camera (jsQR), fill the code field and submit.
// Without a camera (or permission) the button stays hidden and the code is typed.
(function () {
  "use strict";
  var button = document.getElementById("scan");
  var video = document.getElementById("scan-video");
  var status = document.getElementById("scan-status");
  if (!button || !video || !window.jsQR || !navigator.mediaDevices ||
      !navigator.mediaDevices.getUserMedia) {
    return;
  }
  var input = document.getElementById(button.getAttribute("data-scan-target"));
  var form = input && input.form;
  var canvas = document.createElement("canvas");
  var context = canvas.getContext("2d", { willReadFrequently: true });
  var stream = null;
  button.hidden = false;

  function stop() {
    if (stream) { stream.getTracks().forEach(function (t) { t.stop(); }); }
    stream = null;
    video.hidden = true;
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
    navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } })
      .then(function (s) {
        stream = s;
        video.srcObject = s;
        video.hidden = false;
        status.textContent = "";
        return video.play();
      })
      .then(function () { window.requestAnimationFrame(tick); })
      .catch(function () { stop(); status.textContent = button.getAttribute("data-denied") || ""; });
  });
})();
