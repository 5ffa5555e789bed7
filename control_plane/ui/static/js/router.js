// Navigation between views, and the cleanups a view leaves behind (timers).

const cleanups = [];

/** Run `cleanup` when the user leaves the current view. */
export function onLeave(cleanup) {
  cleanups.push(cleanup);
}

/** Run and forget the cleanups of the view being left. */
export function leaveView() {
  while (cleanups.length) cleanups.pop()();
}

/** Show the view at `hash`, rendering it again if it is the current one. */
export function navigate(hash) {
  if (location.hash === hash) window.dispatchEvent(new HashChangeEvent("hashchange"));
  else location.hash = hash;
}
