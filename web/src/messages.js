// messages.js — what the user reads when something goes wrong.
import { NetworkError } from './api.js';

function duration(s) {
  if (s < 60) return s === 1 ? '1 second' : `${s} seconds`;
  const m = Math.ceil(s / 60);
  return m === 1 ? '1 minute' : `${m} minutes`;
}

// What the device and enrolment key pages say for the API's refusals
// (docs/agent-tokens.md, docs/probes-and-addresses.md); pass to describe().
export const DEVICE_ERRORS = {
  forbidden: 'Your role does not allow this action. Ask an administrator for a role with the permission.',
  not_found: 'This device was not found. It may have been removed, or it belongs to an organization you cannot see.',
  device_decommissioned: 'This device is decommissioned: it has no agent token to rotate or reset.',
  no_agent_token: 'This device has no working agent token (it was reset): enrol the agent again with an enrolment key.',
  device_under_review: 'This device is suspended and awaits review: review it instead.',
  not_under_review: 'This device is not awaiting review (it was never suspended, or it has been reviewed already).',
};

// "Try again in …" for a 429 with Retry-After SECONDS (null: unknown).
export function retryText(seconds) {
  if (seconds === null || seconds === undefined) return 'Too many attempts. Wait a little, then try again.';
  const at = new Date(Date.now() + seconds * 1000);
  return `Too many attempts. Try again in ${duration(seconds)} (at ${at.toLocaleTimeString()}).`;
}

// A sentence for ERR (ApiError or NetworkError); SPECIFIC maps error codes
// of the calling page to its own wording.
export function describe(err, specific) {
  if (err instanceof NetworkError) {
    return 'Cannot reach the Breeze server. It may be down or your connection may be interrupted; try again in a moment.';
  }
  if (specific && specific[err.code]) return specific[err.code];
  if (err.status === 429) return retryText(err.retryAfter);
  if (err.status >= 500) {
    return `The server could not complete the request (HTTP ${err.status}). Try again in a moment.`;
  }
  if (err.code === 'origin_not_allowed') {
    return `The server does not accept sign-ins from ${location.origin}: add it to ALLOWED_ORIGINS.`;
  }
  return err.message || `The request failed (HTTP ${err.status}).`;
}
