// The app's shared context (filled in by main.js): the gateway client and navigation.
export const ctx = {
  /** @type {import('./gateway.js').Gateway} */
  gw: null,
  basePath: '',
  navigate: (_path) => {},
  badges: { approvals: 0, devices: 0 },
  setBadge: (_name, _n) => {},
};
