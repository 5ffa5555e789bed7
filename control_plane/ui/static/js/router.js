// Navigation between views, and the cleanups a view leaves behind (timers).
//
// Views render asynchronously, so a user may leave one before it has finished;
// each view has a number, and work that outlives its view checks it.

const cleanups = [];
let current = 0;

/** Return the number of the view being shown. */
export function currentView() {
  return current;
}

/** Run `cleanup` when the user leaves view `view`, at once if already left. */
export function onLeave(cleanup, view = current) {
  if (view === current) cleanups.push(cleanup);
  else cleanup();
}

/** Run and forget the cleanups of the view being left; start a new one. */
export function leaveView() {
  current += 1;
  while (cleanups.length) cleanups.pop()();
  return current;
}

/** Show the view at `hash`, rendering it again if it is the current one. */
export function navigate(hash) {
  if (location.hash === hash) window.dispatchEvent(new HashChangeEvent("hashchange"));
  else location.hash = hash;
}
