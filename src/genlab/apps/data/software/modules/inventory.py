"""A shop's stock."""


class Inventory:
    def __init__(self):
        self.items = {}

    def add(self, name, quantity=1):
        if quantity <= 0:
            raise ValueError("quantity must be positive")
        self.items[name] = self.items.get(name, 0) + quantity

    def remove(self, name, quantity=1):
        have = self.items.get(name, 0)
        if quantity > have:
            raise KeyError(f"only {have} {name} in stock")
        if quantity == have:
            del self.items[name]
        else:
            self.items[name] = have - quantity

    def count(self, name):
        return self.items.get(name, 0)

    def total(self):
        return sum(self.items.values())


def restock_list(inventory, minimum):
    return sorted(name for name, q in inventory.items.items() if q < minimum)
