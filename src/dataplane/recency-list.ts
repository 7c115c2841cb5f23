/** The links a node of a `RecencyList` carries itself: its neighbours toward either end. */
export interface RecencyLinks<T> {
  older: T | null;
  newer: T | null;
}

/**
 * An intrusive doubly linked list from oldest to newest: the links live in the nodes, so appending,
 * removing and moving a node to the newest end cost a few pointer writes — no allocation and no
 * Map delete/re-insert per event (which leaves holes V8 compacts every few thousand events). Used
 * for recency (allowlist entries, findings: evict the oldest, list the newest first) and for
 * deadlines that are appended in time order (DNS upstream tries: expire from the oldest).
 */
export class RecencyList<T extends RecencyLinks<T>> {
  private head: T | null = null;
  private tail: T | null = null;

  /** The least recently added or moved node, or null when empty. */
  get oldest(): T | null {
    return this.head;
  }

  /** The most recently added or moved node, or null when empty. */
  get newest(): T | null {
    return this.tail;
  }

  /** Appends a node that is not in the list. */
  pushNewest(node: T): void {
    node.older = this.tail;
    node.newer = null;
    if (this.tail === null) this.head = node;
    else this.tail.newer = node;
    this.tail = node;
  }

  /** Removes a node that is in the list. */
  remove(node: T): void {
    if (node.older === null) this.head = node.newer;
    else node.older.newer = node.newer;
    if (node.newer === null) this.tail = node.older;
    else node.newer.older = node.older;
    node.older = null;
    node.newer = null;
  }

  /** Moves a node that is in the list to the newest end. */
  moveToNewest(node: T): void {
    if (this.tail === node) return;
    this.remove(node);
    this.pushNewest(node);
  }
}
