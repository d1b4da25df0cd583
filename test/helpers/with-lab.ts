/** A fresh lab (src/lab/netns.ts) for one test, always destroyed, on failure too. */
import { Lab } from '../../src/lab/netns';

/** Runs `fn` with a fresh lab and always destroys it. */
export async function withLab<T>(fn: (lab: Lab) => Promise<T>): Promise<T> {
  const lab = new Lab();
  try {
    return await fn(lab);
  } finally {
    await lab.destroy();
  }
}
