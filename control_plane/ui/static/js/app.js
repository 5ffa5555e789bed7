// The single-page shell: sign in, the header, and the hash router.
//
// Routes: #/groups, #/groups/<id>[/<tab>], #/groups/<id>/consumers/<consumer>.

import {
  call,
  clearToken,
  getToken,
  hasEndpoint,
  onUnauthorized,
  setToken,
} from "./api.js";
import { field, h, input, messageArea, replace, showError } from "./dom.js";
import { renderGroupList, renderGroupPage } from "./groups.js";
import { currentView, leaveView, navigate } from "./router.js";

const main = document.getElementById("main");
const account = document.getElementById("account");
let signInReason = "";
// Who the token belongs to, when the control plane can say: {token, name, role}.
let identity = null;

const ROLE_NAMES = {
  organization_admin: "organization admin",
  runtime_group_admin: "runtime group admin",
  viewer: "viewer",
};

async function loadIdentity(token) {
  if (identity?.token === token) return;
  identity = { token };
  if (!(await hasEndpoint("currentToken"))) return;
  try {
    const current = await call("currentToken");
    identity = { token, name: current?.name, role: current?.role };
  } catch {
    // The header then shows the token's kind only; nothing else depends on it.
  }
}

function tokenKind(token) {
  if (token.startsWith("kpat_")) return "personal access token";
  if (token.startsWith("spat_")) return "system access token";
  return "admin token";
}

function renderAccount() {
  const token = getToken();
  if (!token) {
    replace(account);
    return;
  }
  // Only the token's last characters are shown: enough to tell two apart.
  const known = identity?.token === token && identity.role;
  const role = known ? ROLE_NAMES[identity.role] || identity.role : "";
  const who = known
    ? `Signed in as ${identity.name || "?"} (${role})`
    : `Signed in with a ${tokenKind(token)} …${token.slice(-4)}`;
  replace(
    account,
    h("span", { class: "who" }, who),
    h(
      "button",
      {
        type: "button",
        class: "secondary",
        onclick: () => {
          clearToken();
          signInReason = "You signed out.";
          navigate("#/signin");
        },
      },
      "Sign out",
    ),
  );
}

function renderSignIn() {
  const messages = messageArea();
  const token = input("token", "", {
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
  });
  const form = h(
    "form",
    {
      class: "card narrow",
      onsubmit: async (event) => {
        event.preventDefault();
        const value = token.value.trim();
        try {
          // Any authenticated read proves the token; a viewer may list groups too.
          await call("listGroups", {}, { token: value, query: { "page[size]": 1 } });
        } catch (error) {
          showError(messages, error, form);
          return;
        }
        setToken(value);
        signInReason = "";
        navigate("#/groups");
      },
    },
    h("h1", {}, "Sign in to Portico"),
    h(
      "p",
      {},
      "Paste an admin API token. ",
      h("code", {}, "make up"),
      " prints the first one and keeps it in ",
      h("code", {}, "var/admin-token"),
      "; ",
      h("code", {}, "python -m control_plane token create"),
      " makes more.",
    ),
    signInReason ? h("p", { class: "notice", role: "status" }, signInReason) : null,
    field("Admin token", token, "Kept in this browser tab only, until you sign out."),
    messages,
    h("button", { type: "submit" }, "Sign in"),
  );
  replace(main, form);
  token.focus();
}

async function route() {
  const view = leaveView();
  if (getToken()) await loadIdentity(getToken());
  renderAccount();
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean);
  if (!getToken()) {
    renderSignIn();
    return;
  }
  const [section, groupId, tab, item] = parts.map(decodeURIComponent);
  // Render off-screen and swap in only if the user is still here, so a slow
  // view never overwrites the one they moved on to.
  const target = document.createElement("div");
  main.setAttribute("aria-busy", "true");
  try {
    if (section === "groups" && groupId) {
      await renderGroupPage(target, groupId, tab || "overview", item);
    } else {
      await renderGroupList(target);
    }
  } catch (error) {
    if (error.status === 401 || view !== currentView()) return;
    const messages = messageArea();
    replace(target, h("h1", {}, "Something went wrong"), messages);
    showError(messages, error);
  } finally {
    if (view === currentView()) main.removeAttribute("aria-busy");
  }
  if (view !== currentView()) return;
  replace(main, [...target.childNodes]);
  // The new page's heading takes focus so screen readers announce it.
  const heading = main.querySelector("h1");
  if (heading) {
    document.title = `${heading.textContent} · Portico`;
    heading.tabIndex = -1;
    heading.focus({ preventScroll: true });
  }
}

onUnauthorized(() => {
  clearToken();
  signInReason = "The control plane refused the token: sign in again.";
  navigate("#/signin");
});

window.addEventListener("hashchange", route);
route();
