/** A minimal typed event stream: on(cb) returns its unsubscribe; emit never throws. */
export class Emitter<T> {
  private readonly listeners = new Set<(value: T) => void>();

  on(callback: (value: T) => void): () => void {
    const wrapped = (value: T): void => callback(value);
    this.listeners.add(wrapped);
    return () => {
      this.listeners.delete(wrapped);
    };
  }

  emit(value: T): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(value);
      } catch {
        // a listener's failure is the listener's business
      }
    }
  }

  get size(): number {
    return this.listeners.size;
  }
}
