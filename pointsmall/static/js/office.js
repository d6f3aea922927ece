// Filter a list as staff type: <input data-filter="ID"> hides the items of #ID whose
// data-search does not contain what was typed. Without script every item stays shown.
// The script is deferred, so what was typed before it ran is applied when it runs.
function applyFilter(input) {
  var list = input.dataset && document.getElementById(input.dataset.filter);
  if (!list) { return; }
  var wanted = input.value.trim().toLowerCase();
  list.querySelectorAll("[data-search]").forEach(function (item) {
    item.hidden = wanted !== "" && item.dataset.search.toLowerCase().indexOf(wanted) < 0;
  });
}
document.addEventListener("input", function (event) { applyFilter(event.target); });
document.querySelectorAll("input[data-filter]").forEach(applyFilter);

// <button data-print> prints the page (the stylesheet leaves the menus off paper).
document.addEventListener("click", function (event) {
  if (event.target.closest && event.target.closest("[data-print]")) { window.print(); }
});
