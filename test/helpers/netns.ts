/** The tests use the lab's namespace plumbing (src/lab/netns.ts): one implementation to trust. */
export * from '../../src/lab/netns';
