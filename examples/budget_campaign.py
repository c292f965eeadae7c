"""A budget-capped campaign: spend at most BUDGET units, and never more than the account's
resource packs have left; stop creating once the next shot would not fit; print what each
shot was charged. Run it again with a larger budget and it goes on where it stopped: the
journal keeps the shots already made, so none is made (or paid for) twice.

    export KLING_API_KEY=...            # KLING_BASE_URL is optional
    python examples/budget_campaign.py [BUDGET]         # default: 100 units

Estimates start from Kling's price list (Image O1: 8 units per image,
https://kling.ai/document-api/pricing/base/image) and follow what tasks are actually charged.
"""

import sys
from decimal import Decimal

import anyio

import kling_async as ka

PRODUCTS = [
    "a white sneaker",
    "a canvas backpack",
    "a steel wrist watch",
    "a ceramic mug",
    "a leather wallet",
    "a pair of sunglasses",
    "a wool scarf",
    "a desk lamp",
    "a glass perfume bottle",
    "a bamboo toothbrush",
    "a linen shirt",
    "a running cap",
]


def shots() -> list[ka.OmniImageRequest]:
    return [
        ka.OmniImageRequest(prompt=f"Studio product photo of {product}, white background", n=2)
        for product in PRODUCTS
    ]


async def main(budget: Decimal) -> int:
    async with ka.KlingClient(journal="budget-campaign.sqlite") as client:
        packs = [p for p in await client.account_costs() if p.status.value == "online"]
        left = sum((p.remaining for p in packs), Decimal(0))
        print(f"resource packs online: {len(packs)}, {left} units left (may lag up to 12 h)")
        cap = min(budget, left)
        print(f"budget for this run: {cap} units")

        spent, over = Decimal(0), 0
        async with client.stream(
            shots(), budget_units=cap, keys=lambda i, _: f"shoot-{i:03d}"
        ) as outcomes:
            async for outcome in outcomes:
                name = PRODUCTS[outcome.index]
                if isinstance(outcome.error, ka.BudgetExceededError):
                    over += 1
                    print(f"over budget  {name}: not created")
                elif outcome.ok and outcome.result is not None:
                    units = outcome.result.units or Decimal(0)
                    spent += units
                    print(
                        f"ok           {name}: {len(outcome.result.images)} images, {units} units"
                    )
                else:
                    print(f"FAIL         {name}: {outcome.error}")
        print(f"charged {spent} units; {over} shot(s) left for a larger budget")
        return 0


if __name__ == "__main__":
    sys.exit(anyio.run(main, Decimal(sys.argv[1] if len(sys.argv) > 1 else "100")))
