/**
 * The forms the difference storage can take, in the words the Storage screen shows
 * (the helper's diffStorageForm; see docs/kernel-driver.md, "Storage forms").
 */
import type { StorageForm } from '../../../../app/shared/contract.js';
import { formatBytes } from '../../../../app/shared/format.js';

export interface StorageFormChoice {
  form: StorageForm;
  label: string;
  /** What the path field asks for under this form. */
  field: string;
  placeholder: string;
  hint: string;
}

export const STORAGE_FORM_CHOICES: StorageFormChoice[] = [
  {
    form: 'new-file',
    label: 'A new file in a directory',
    field: 'Storage directory',
    placeholder: '/var/tmp',
    hint: 'Each snapshot gets a new file there, removed when the snapshot is destroyed. An existing directory, on a filesystem that is not being snapshotted.',
  },
  {
    form: 'directory',
    label: 'An unnamed temporary file in a directory',
    field: 'Storage directory',
    placeholder: '/var/tmp',
    hint: 'The file has no name and disappears with the snapshot, even if the helper or the computer stops: nothing is ever left behind.',
  },
  {
    form: 'existing-file',
    label: 'An existing file',
    field: 'Existing file',
    placeholder: '/var/tmp/blksnap-storage.img',
    hint: 'A regular file you prepared (for example with fallocate). Its size is the starting capacity; it grows up to the limit if needed. It is kept after the snapshot, but its contents are overwritten.',
  },
  {
    form: 'block-device',
    label: 'A whole block device',
    field: 'Block device',
    placeholder: '/dev/sdc',
    hint: 'An unused disk or partition, opened exclusively. Everything on it is overwritten. Refused while it is mounted or used by anything else.',
  },
];

export function formChoice(form: StorageForm | undefined): StorageFormChoice {
  return STORAGE_FORM_CHOICES.find((c) => c.form === (form ?? 'new-file')) ?? STORAGE_FORM_CHOICES[0]!;
}

/** One line for an allocation: "up to 2 GiB in /var/tmp", "the block device /dev/sdc". */
export function describeStorage(form: StorageForm | undefined, path: string, limitBytes: number): string {
  switch (form ?? 'new-file') {
    case 'new-file':
      return `up to ${formatBytes(limitBytes)} in ${path}`;
    case 'directory':
      return `up to ${formatBytes(limitBytes)} in an unnamed file in ${path}`;
    case 'existing-file':
      return `the existing file ${path}, up to ${formatBytes(limitBytes)}`;
    case 'block-device':
      return `the whole block device ${path}`;
  }
}
