import { parseInZone } from './calendar.js';
import { LICENSE_STATUSES, type LicenseStatus } from './license-status.js';

/**
 * A license as any source yields it: the text columns our own table has, and the ones the Botble adapter reads
 * from Botble's (a Botble license may have no code). Dates are text, read in the business zone by readLicense.
 */
export interface RawLicense {
  id: number;
  license_code: string | null;
  product_id: string | null;
  product_name: string | null;
  customer_id: string | null;
  email: string | null;
  status: string;
  expires_at: string | null;
  updates_until: string | null;
}

/** A license as the rules take it: its dates are instants (read in the business zone) and its status one of ours. */
export interface License {
  id: number;
  code: string;
  productId: string | null;
  productName: string | null;
  customerId: string | null;
  email: string | null;
  status: LicenseStatus;
  expiresAt: Date | null;
  updatesUntil: Date | null;
}

const isStatus = (status: string): status is LicenseStatus => (LICENSE_STATUSES as readonly string[]).includes(status);

/** A raw license read in `timeZone`, or why it cannot be (the problem is what a run's warning says). */
export function readLicense(raw: RawLicense, timeZone: string): License | { problem: string } {
  // Rows written by other systems: an event without a license code would reach receivers unusable.
  if (raw.license_code === null || raw.license_code.trim() === '') return { problem: 'license_code is empty' };
  const expiresAt = raw.expires_at === null ? null : parseInZone(raw.expires_at, timeZone)?.instant;
  if (expiresAt === undefined) return { problem: `expires_at "${raw.expires_at}" is not a date` };
  const updatesUntil = raw.updates_until === null ? null : parseInZone(raw.updates_until, timeZone)?.instant;
  if (updatesUntil === undefined) return { problem: `updates_until "${raw.updates_until}" is not a date` };
  // Our table's CHECK and the Botble adapter both give one of the four: anything else was written around them.
  if (!isStatus(raw.status)) return { problem: `status "${raw.status}" is not a license status` };
  return {
    id: raw.id,
    code: raw.license_code,
    productId: raw.product_id,
    productName: raw.product_name,
    customerId: raw.customer_id,
    email: raw.email,
    status: raw.status,
    expiresAt,
    updatesUntil,
  };
}
