// The admin API client: the bearer token, every endpoint the UI calls, errors.
//
// Every request the UI makes goes through call() with a name from ENDPOINTS, so
// this table is the whole list of API paths the UI depends on; the test suite
// checks each of them against the control plane's OpenAPI document.

const TOKEN_KEY = "portico.token";

export const ENDPOINTS = {
  openapi: ["GET", "/openapi.json"],

  listGroups: ["GET", "/v2/runtime-groups"],
  createGroup: ["POST", "/v2/runtime-groups"],
  getGroup: ["GET", "/v2/runtime-groups/{group}"],
  updateGroup: ["PATCH", "/v2/runtime-groups/{group}"],
  deleteGroup: ["DELETE", "/v2/runtime-groups/{group}"],

  listMembers: ["GET", "/v2/runtime-groups/{group}/composite-memberships"],
  addMembers: ["POST", "/v2/runtime-groups/{group}/composite-memberships/add"],
  removeMembers: ["POST", "/v2/runtime-groups/{group}/composite-memberships/remove"],
  compositeStatus: ["GET", "/v2/runtime-groups/{group}/composite-status"],

  listNodes: ["GET", "/v2/runtime-groups/{group}/nodes"],
  deleteNode: ["DELETE", "/v2/runtime-groups/{group}/nodes/{node}"],
  listCertificates: ["GET", "/v2/runtime-groups/{group}/dp-client-certificates"],
  deleteCertificate: [
    "DELETE",
    "/v2/runtime-groups/{group}/dp-client-certificates/{certificate}",
  ],
  generateCertificate: [
    "POST",
    "/v2/runtime-groups/{group}/dp-client-certificates/generate",
  ],

  listServices: ["GET", "/v2/runtime-groups/{group}/core-entities/services"],
  createService: ["POST", "/v2/runtime-groups/{group}/core-entities/services"],
  putService: ["PUT", "/v2/runtime-groups/{group}/core-entities/services/{id}"],
  deleteService: ["DELETE", "/v2/runtime-groups/{group}/core-entities/services/{id}"],

  listRoutes: ["GET", "/v2/runtime-groups/{group}/core-entities/routes"],
  createRoute: ["POST", "/v2/runtime-groups/{group}/core-entities/routes"],
  putRoute: ["PUT", "/v2/runtime-groups/{group}/core-entities/routes/{id}"],
  deleteRoute: ["DELETE", "/v2/runtime-groups/{group}/core-entities/routes/{id}"],

  listPlugins: ["GET", "/v2/runtime-groups/{group}/core-entities/plugins"],
  createPlugin: ["POST", "/v2/runtime-groups/{group}/core-entities/plugins"],
  putPlugin: ["PUT", "/v2/runtime-groups/{group}/core-entities/plugins/{id}"],
  deletePlugin: ["DELETE", "/v2/runtime-groups/{group}/core-entities/plugins/{id}"],

  listConsumers: ["GET", "/v2/runtime-groups/{group}/core-entities/consumers"],
  createConsumer: ["POST", "/v2/runtime-groups/{group}/core-entities/consumers"],
  putConsumer: ["PUT", "/v2/runtime-groups/{group}/core-entities/consumers/{id}"],
  deleteConsumer: ["DELETE", "/v2/runtime-groups/{group}/core-entities/consumers/{id}"],

  listBasicAuth: [
    "GET",
    "/v2/runtime-groups/{group}/core-entities/consumers/{consumer}/basic-auth",
  ],
  createBasicAuth: [
    "POST",
    "/v2/runtime-groups/{group}/core-entities/consumers/{consumer}/basic-auth",
  ],
  putBasicAuth: [
    "PUT",
    "/v2/runtime-groups/{group}/core-entities/consumers/{consumer}/basic-auth/{id}",
  ],
  deleteBasicAuth: [
    "DELETE",
    "/v2/runtime-groups/{group}/core-entities/consumers/{consumer}/basic-auth/{id}",
  ],

  listKeyAuth: [
    "GET",
    "/v2/runtime-groups/{group}/core-entities/consumers/{consumer}/key-auth",
  ],
  createKeyAuth: [
    "POST",
    "/v2/runtime-groups/{group}/core-entities/consumers/{consumer}/key-auth",
  ],
  putKeyAuth: [
    "PUT",
    "/v2/runtime-groups/{group}/core-entities/consumers/{consumer}/key-auth/{id}",
  ],
  deleteKeyAuth: [
    "DELETE",
    "/v2/runtime-groups/{group}/core-entities/consumers/{consumer}/key-auth/{id}",
  ],

  listAcls: [
    "GET",
    "/v2/runtime-groups/{group}/core-entities/consumers/{consumer}/acls",
  ],
  createAcl: [
    "POST",
    "/v2/runtime-groups/{group}/core-entities/consumers/{consumer}/acls",
  ],
  putAcl: [
    "PUT",
    "/v2/runtime-groups/{group}/core-entities/consumers/{consumer}/acls/{id}",
  ],
  deleteAcl: [
    "DELETE",
    "/v2/runtime-groups/{group}/core-entities/consumers/{consumer}/acls/{id}",
  ],
};

// Endpoints the UI uses only when the control plane's OpenAPI document lists
// them (see hasEndpoint), so an older control plane still gets a working UI.
export const OPTIONAL_ENDPOINTS = {
  currentToken: ["GET", "/v2/tokens/current"],
};

/** Raised when the API answers with an error status; carries the problem. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.message || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }

  /** The `invalid_parameters` of a 400, or an empty list. */
  get invalidParameters() {
    const found = this.problem.invalid_parameters;
    return Array.isArray(found) ? found : [];
  }
}

export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

// Listeners told when the API refuses the token, so the app can ask again.
const unauthorizedListeners = [];

export function onUnauthorized(listener) {
  unauthorizedListeners.push(listener);
}

function expand(template, params) {
  return template.replace(/\{(\w+)\}/g, (_, key) => {
    if (params[key] === undefined || params[key] === null) {
      throw new Error(`missing path parameter ${key}`);
    }
    return encodeURIComponent(params[key]);
  });
}

function queryString(query) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") {
      search.append(key, String(value));
    }
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

/** Send one API request by endpoint name; return the parsed body or null. */
export async function call(name, params = {}, options = {}) {
  const endpoint = ENDPOINTS[name] || OPTIONAL_ENDPOINTS[name];
  if (!endpoint) throw new Error(`unknown endpoint ${name}`);
  const [method, template] = endpoint;
  const headers = { Accept: "application/json, application/problem+json" };
  const token = options.token ?? getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  let body;
  if (options.body !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(options.body);
  }

  let response;
  try {
    response = await fetch(expand(template, params) + queryString(options.query), {
      method,
      headers,
      body,
      cache: "no-store",
    });
  } catch (error) {
    throw new ApiError(0, {
      title: "Network error",
      detail: `The control plane could not be reached (${error.message}).`,
    });
  }

  const text = await response.text();
  let parsed = null;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = { detail: text };
    }
  }
  if (!response.ok) {
    const problem = parsed && typeof parsed === "object" ? parsed : {};
    if (response.status === 401 && !options.token) {
      for (const listener of unauthorizedListeners) listener();
    }
    throw new ApiError(response.status, problem);
  }
  return parsed;
}

/** Return every item of a Kong-style list, following its `offset` pages. */
export async function listAllEntities(name, params) {
  const items = [];
  let offset;
  for (let page = 0; page < 100; page += 1) {
    const body = await call(name, params, { query: { size: 1000, offset } });
    items.push(...(body?.data || []));
    offset = body?.offset;
    if (!offset || !body?.next) break;
  }
  return items;
}

/** Return every item of a Konnect-style list, following its page numbers. */
export async function listAllPages(name, params, query = {}) {
  const items = [];
  const size = 100;
  for (let number = 1; number <= 100; number += 1) {
    const body = await call(name, params, {
      query: { ...query, "page[size]": size, "page[number]": number },
    });
    const data = body?.data || body?.items || [];
    items.push(...data);
    const total = body?.meta?.page?.total ?? body?.page?.total_count;
    if (data.length < size || (total !== undefined && items.length >= total)) break;
  }
  return items;
}

let documented = null;

/** Return whether the control plane documents the endpoint called `name`. */
export async function hasEndpoint(name) {
  documented ||= call("openapi").catch(() => ({ paths: {} }));
  const [method, template] = ENDPOINTS[name] || OPTIONAL_ENDPOINTS[name];
  const shape = (path) => path.replace(/\{[^}]*\}/g, "{}");
  const paths = (await documented)?.paths || {};
  return Object.entries(paths).some(
    ([path, operations]) =>
      shape(path) === shape(template) && method.toLowerCase() in (operations || {}),
  );
}
